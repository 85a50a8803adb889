"""Which adapters stay in memory: an LRU under a byte budget, as pure bookkeeping.

The engine asks :meth:`AdapterSlots.plan` before loading an adapter; the
answer is the least-recently-used adapters to evict first, never one that a
running row still uses. ``None`` means it cannot fit now (every candidate for
eviction is busy): the request waits until rows finish, instead of
overrunning the budget.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Slot:
    key: str  # the adapter's sha256
    name: str  # its name inside the model
    nbytes: int
    users: int = 0


class AdapterSlots:
    def __init__(self, budget_bytes: int, max_adapters: int) -> None:
        if budget_bytes < 1 or max_adapters < 1:
            raise ValueError("budget and max_adapters must be positive")
        self.budget_bytes = budget_bytes
        self.max_adapters = max_adapters
        self._slots: OrderedDict[str, Slot] = OrderedDict()  # oldest use first

    def __contains__(self, key: str) -> bool:
        return key in self._slots

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def used_bytes(self) -> int:
        return sum(s.nbytes for s in self._slots.values())

    def get(self, key: str) -> Slot | None:
        return self._slots.get(key)

    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def plan(self, nbytes: int) -> list[str] | None:
        """Keys to evict (LRU first) so ``nbytes`` more fit; None if it cannot fit now."""
        if nbytes > self.budget_bytes:
            return None
        free = self.budget_bytes - self.used_bytes
        count = len(self._slots)
        evict: list[str] = []
        for key, slot in self._slots.items():
            if free >= nbytes and count < self.max_adapters:
                break
            if slot.users:
                continue
            evict.append(key)
            free += slot.nbytes
            count -= 1
        if free >= nbytes and count < self.max_adapters:
            return evict
        return None

    def add(self, key: str, name: str, nbytes: int) -> Slot:
        slot = Slot(key, name, nbytes)
        self._slots[key] = slot
        return slot

    def remove(self, key: str) -> Slot:
        return self._slots.pop(key)

    def acquire(self, key: str) -> Slot:
        slot = self._slots[key]
        slot.users += 1
        self._slots.move_to_end(key)
        return slot

    def release(self, key: str) -> None:
        slot = self._slots.get(key)
        if slot is not None and slot.users > 0:
            slot.users -= 1
