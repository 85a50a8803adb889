"""The route table: what the config says about routes and virtual models, indexed once.

Every request looks these up; building them once per app keeps the lookups
cheap and gives the pipeline, the API modules and ``policy explain`` the same
view (a virtual model's candidates are exactly the routes the policy weighs).
"""

from __future__ import annotations

from dataclasses import dataclass

from hybridgate.config import GatewayConfig, RouteConfig, VirtualModel
from hybridgate.policy import RouteFacts
from hybridgate.routing.plan import candidate_routes


@dataclass(frozen=True)
class RouteTable:
    # Plain dicts: features that add routes at run time (distill task routes) extend them.
    routes: dict[str, RouteConfig]
    virtual_models: dict[str, VirtualModel]
    #: Per callable model name: the facts of its candidate routes, in configured order.
    candidates: dict[str, tuple[RouteFacts, ...]]

    @classmethod
    def from_config(cls, config: GatewayConfig) -> RouteTable:
        routes = {r.name: r for r in config.routes}
        vms: dict[str, VirtualModel] = {}
        candidates: dict[str, tuple[RouteFacts, ...]] = {}
        for name in (*config.models, *routes):
            vm = config.virtual_model(name)
            if vm is not None:
                vms[name] = vm
                candidates[name] = tuple(
                    RouteFacts.from_route(routes[n]) for n in candidate_routes(vm)
                )
        return cls(routes=routes, virtual_models=vms, candidates=candidates)
