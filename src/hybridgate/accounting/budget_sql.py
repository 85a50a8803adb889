"""PostgreSQL functions behind the budgets shared by every replica (migrations only).

Kept apart from :mod:`.shared_budgets` so that the migration list can be built
without the ``postgres`` extra installed (SQLite runs none of this).

Version 2 took and settled one hold per statement. Version 3 adds the batch
forms the gateway uses: every reservation waiting at one moment is decided in
one statement (one round trip, one commit), and every settle likewise.

Why the batch stays exact: ``hg_budget_reserve_many`` first locks every counter
the batch touches, one at a time in one sorted order (the same order every
replica and every older single-hold call uses, so two batches can wait on each
other but never deadlock), reading each counter's committed spend plus holds
*after* taking its lock. It then decides the reservations one after another
against those locked totals, adding each accepted one before the next is
checked, exactly as if they had arrived one by one. A reservation that would
cross any of its limits is refused alone (its detail returned), the rest of
the batch is unaffected. The new holds are written before the transaction
commits, and the locks are released only then: no other batch can read a
total that misses them.
"""

from __future__ import annotations

PG_SHARED = """
ALTER TABLE budget_spend ADD COLUMN usd_held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE budget_spend ADD COLUMN tokens_held BIGINT NOT NULL DEFAULT 0;
CREATE TABLE budget_holds (
    id TEXT PRIMARY KEY,
    scopes TEXT[] NOT NULL,
    names TEXT[] NOT NULL,
    periods TEXT[] NOT NULL,
    usd_nano BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    expires_ns BIGINT NOT NULL
);
CREATE INDEX budget_holds_expiry ON budget_holds (expires_ns);
CREATE FUNCTION hg_budget_reserve(
    p_id TEXT, p_scopes TEXT[], p_names TEXT[], p_periods TEXT[],
    p_usd_lim BIGINT[], p_tok_lim BIGINT[], p_usd BIGINT, p_tokens BIGINT, p_expires BIGINT
) RETURNS VOID AS $$
DECLARE i INT; n INT; cu BIGINT; ct BIGINT;
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_scopes, 1), 0) LOOP
    INSERT INTO budget_spend (scope, name, period, usd_nano, tokens)
      VALUES (p_scopes[i], p_names[i], p_periods[i], 0, 0) ON CONFLICT DO NOTHING;
    UPDATE budget_spend SET usd_held = usd_held + p_usd, tokens_held = tokens_held + p_tokens
     WHERE scope = p_scopes[i] AND name = p_names[i] AND period = p_periods[i]
       AND (p_usd_lim[i] IS NULL OR usd_nano + usd_held + p_usd <= p_usd_lim[i])
       AND (p_tok_lim[i] IS NULL OR tokens + tokens_held + p_tokens <= p_tok_lim[i]);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
      SELECT usd_nano + usd_held, tokens + tokens_held INTO cu, ct FROM budget_spend
       WHERE scope = p_scopes[i] AND name = p_names[i] AND period = p_periods[i];
      RAISE EXCEPTION 'budget exceeded' USING ERRCODE = 'HGB01',
        DETAIL = format('%s %s %s', i, cu, ct);
    END IF;
  END LOOP;
  INSERT INTO budget_holds VALUES (p_id, p_scopes, p_names, p_periods, p_usd, p_tokens, p_expires);
END $$ LANGUAGE plpgsql;
CREATE FUNCTION hg_budget_settle(p_id TEXT, p_usd BIGINT, p_tokens BIGINT) RETURNS BOOLEAN AS $$
DECLARE h budget_holds%ROWTYPE; i INT;
BEGIN
  DELETE FROM budget_holds WHERE id = p_id RETURNING * INTO h;
  IF NOT FOUND THEN RETURN FALSE; END IF;
  FOR i IN 1 .. coalesce(array_length(h.scopes, 1), 0) LOOP
    UPDATE budget_spend SET usd_held = usd_held - h.usd_nano, tokens_held = tokens_held - h.tokens,
           usd_nano = usd_nano + p_usd, tokens = tokens + p_tokens
     WHERE scope = h.scopes[i] AND name = h.names[i] AND period = h.periods[i];
  END LOOP;
  RETURN TRUE;
END $$ LANGUAGE plpgsql
"""

#: Batch reserve and settle. Arguments of ``hg_budget_reserve_many``:
#: the batch's distinct counters, sorted (``p_cs``/``p_cn``/``p_cp``: scope, name, period);
#: the reservations in arrival order (id, usd and tokens to hold, hold expiry);
#: one entry per (reservation, counter) it needs, grouped by reservation in order
#: (``p_er``: reservation, ``p_ec``: counter, both 1-based, and the counter's limits).
#: Returns one text per reservation: NULL when held, else ``"<entry> <usd> <tokens>"``
#: (which of its counters refused, and that counter's spent-or-held totals).
PG_BATCH = """
CREATE FUNCTION hg_budget_reserve_many(
    p_cs TEXT[], p_cn TEXT[], p_cp TEXT[],
    p_ids TEXT[], p_usd BIGINT[], p_tok BIGINT[], p_exp BIGINT[],
    p_er INT[], p_ec INT[], p_eul BIGINT[], p_etl BIGINT[]
) RETURNS TEXT[] AS $$
DECLARE
  nc INT := coalesce(array_length(p_cs, 1), 0);
  nr INT := coalesce(array_length(p_ids, 1), 0);
  ne INT := coalesce(array_length(p_er, 1), 0);
  cu BIGINT[]; ct BIGINT[]; du BIGINT[]; dt BIGINT[]; res TEXT[];
  i INT; j INT := 1; k INT; r INT; first INT; a BIGINT; b BIGINT; bad TEXT;
BEGIN
  cu := array_fill(0::BIGINT, ARRAY[nc]); ct := cu; du := cu; dt := cu;
  res := array_fill(NULL::TEXT, ARRAY[nr]);
  FOR i IN 1 .. nc LOOP
    INSERT INTO budget_spend (scope, name, period, usd_nano, tokens)
      VALUES (p_cs[i], p_cn[i], p_cp[i], 0, 0) ON CONFLICT DO NOTHING;
    SELECT usd_nano + usd_held, tokens + tokens_held INTO a, b FROM budget_spend
     WHERE scope = p_cs[i] AND name = p_cn[i] AND period = p_cp[i] FOR UPDATE;
    cu[i] := a; ct[i] := b;
  END LOOP;
  FOR r IN 1 .. nr LOOP
    first := j; bad := NULL;
    WHILE j <= ne AND p_er[j] = r LOOP
      k := p_ec[j];
      IF bad IS NULL AND ((p_eul[j] IS NOT NULL AND cu[k] + p_usd[r] > p_eul[j])
          OR (p_etl[j] IS NOT NULL AND ct[k] + p_tok[r] > p_etl[j])) THEN
        bad := format('%s %s %s', j - first + 1, cu[k], ct[k]);
      END IF;
      j := j + 1;
    END LOOP;
    IF bad IS NULL THEN
      FOR i IN first .. j - 1 LOOP
        k := p_ec[i];
        cu[k] := cu[k] + p_usd[r]; ct[k] := ct[k] + p_tok[r];
        du[k] := du[k] + p_usd[r]; dt[k] := dt[k] + p_tok[r];
      END LOOP;
      INSERT INTO budget_holds VALUES (p_ids[r],
        ARRAY(SELECT p_cs[p_ec[x]] FROM generate_series(first, j - 1) AS x ORDER BY x),
        ARRAY(SELECT p_cn[p_ec[x]] FROM generate_series(first, j - 1) AS x ORDER BY x),
        ARRAY(SELECT p_cp[p_ec[x]] FROM generate_series(first, j - 1) AS x ORDER BY x),
        p_usd[r], p_tok[r], p_exp[r]);
    ELSE
      res[r] := bad;
    END IF;
  END LOOP;
  UPDATE budget_spend s SET usd_held = s.usd_held + d.u, tokens_held = s.tokens_held + d.t
    FROM unnest(p_cs, p_cn, p_cp, du, dt) AS d(sc, nm, pd, u, t)
   WHERE s.scope = d.sc AND s.name = d.nm AND s.period = d.pd AND (d.u <> 0 OR d.t <> 0);
  RETURN res;
END $$ LANGUAGE plpgsql;
CREATE FUNCTION hg_budget_settle_many(
    p_ids TEXT[], p_usd BIGINT[], p_tok BIGINT[],
    p_fs TEXT[], p_fn TEXT[], p_fp TEXT[], p_fusd BIGINT[], p_ftok BIGINT[]
) RETURNS INT AS $$
DECLARE n INT;
BEGIN
  WITH gone AS (
    DELETE FROM budget_holds h USING unnest(p_ids, p_usd, p_tok) AS s(id, usd, tok)
     WHERE h.id = s.id
    RETURNING h.scopes, h.names, h.periods, h.usd_nano AS hu, h.tokens AS ht, s.usd, s.tok
  ), d AS (
    SELECT g.scopes[i] AS sc, g.names[i] AS nm, g.periods[i] AS pd,
           g.usd AS u, g.tok AS t, g.hu, g.ht
      FROM gone g CROSS JOIN LATERAL generate_subscripts(g.scopes, 1) AS i
    UNION ALL
    SELECT f.sc, f.nm, f.pd, f.u, f.t, 0, 0
      FROM unnest(p_fs, p_fn, p_fp, p_fusd, p_ftok) AS f(sc, nm, pd, u, t)
  )
  INSERT INTO budget_spend AS b (scope, name, period, usd_nano, tokens, usd_held, tokens_held)
  SELECT sc, nm, pd, sum(u)::BIGINT, sum(t)::BIGINT, -sum(hu)::BIGINT, -sum(ht)::BIGINT
    FROM d GROUP BY sc, nm, pd ORDER BY sc COLLATE "C", nm COLLATE "C", pd COLLATE "C"
  ON CONFLICT (scope, name, period) DO UPDATE SET
    usd_nano = b.usd_nano + excluded.usd_nano, tokens = b.tokens + excluded.tokens,
    usd_held = b.usd_held + excluded.usd_held, tokens_held = b.tokens_held + excluded.tokens_held;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$ LANGUAGE plpgsql
"""
