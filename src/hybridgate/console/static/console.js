// hybridgate console: receipt verification and approver signatures, in the browser.
//
// Everything cryptographic runs here with WebCrypto (Ed25519, SHA-256), so the
// page does not have to trust the server: a receipt is checked against the
// log key (pin your own), its inclusion proof against the signed C2SP
// checkpoint (RFC 9162 hashing), and approvals are signed with the approver's
// own key, which never leaves this browser. No inline script, no eval, no
// innerHTML with server data.
"use strict";
(() => {
  const enc = new TextEncoder();
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const PIN = "hybridgate.pinnedLogKey";

  // -- bytes ---------------------------------------------------------------------------
  function b64dec(s) {
    if (typeof s !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new Error("not base64");
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function b64enc(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }
  function b64urlDec(s) {
    const t = s.replace(/-/g, "+").replace(/_/g, "/");
    return b64dec(t + "===".slice((t.length + 3) % 4));
  }
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let i = 0;
    for (const p of parts) {
      out.set(p, i);
      i += p.length;
    }
    return out;
  }
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));

  // RFC 8785: keys sorted by UTF-16 code units, ECMAScript number and string forms.
  function canon(v) {
    if (v === null || typeof v !== "object") {
      if (typeof v === "number" && !Number.isFinite(v)) throw new Error("non-finite number");
      return JSON.stringify(v);
    }
    if (Array.isArray(v)) return "[" + v.map(canon).join(",") + "]";
    const keys = Object.keys(v).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canon(v[k])).join(",") + "}";
  }

  function split3(s) {
    const i = s.indexOf("+");
    const j = s.indexOf("+", i + 1);
    if (i < 1 || j < 0) throw new Error("expected name+keyid+key");
    return [s.slice(0, i), s.slice(i + 1, j), s.slice(j + 1)];
  }
  async function keyId(name, pub) {
    const d = await sha256(concat(enc.encode(name + "\n"), Uint8Array.of(1), pub));
    return hex(d.slice(0, 4));
  }

  // A C2SP verifier key string: name+keyid+base64(0x01 || public key).
  async function parseVerifier(text) {
    const [name, kid, b64] = split3(text.trim());
    const raw = b64dec(b64);
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 verifier key");
    const pub = raw.slice(1);
    if ((await keyId(name, pub)) !== kid) throw new Error("key id does not match the key");
    const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
    return { name, kid, key, text: text.trim() };
  }

  // -- C2SP checkpoint and RFC 9162 inclusion ------------------------------------------
  async function verifyCheckpoint(note, vk) {
    if (typeof note !== "string" || !note.endsWith("\n")) throw new Error("malformed checkpoint");
    const cut = note.lastIndexOf("\n\n");
    if (cut < 0) throw new Error("checkpoint has no signatures");
    const text = note.slice(0, cut + 1);
    const lines = text.split("\n").slice(0, -1);
    if (lines.length < 3 || !/^(0|[1-9][0-9]{0,15})$/.test(lines[1])) {
      throw new Error("malformed checkpoint body");
    }
    const root = b64dec(lines[2]);
    if (root.length !== 32) throw new Error("checkpoint root is not 32 bytes");
    for (const line of note.slice(cut + 2).split("\n")) {
      if (!line.startsWith("\u2014 ")) continue;
      const rest = line.slice(2);
      const sp = rest.lastIndexOf(" ");
      const blob = b64dec(rest.slice(sp + 1));
      if (rest.slice(0, sp) !== vk.name || blob.length !== 68 || hex(blob.slice(0, 4)) !== vk.kid) {
        continue;
      }
      const ok = await crypto.subtle.verify("Ed25519", vk.key, blob.slice(4), enc.encode(text));
      if (ok) return { origin: lines[0], size: Number(lines[1]), root };
      throw new Error("checkpoint signature does not verify");
    }
    throw new Error("checkpoint is not signed by the log key");
  }

  async function verifyInclusion(index, size, leaf, proof, root) {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new Error("index outside the tree");
    }
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0) throw new Error("proof is too long");
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(concat(Uint8Array.of(1), p, r));
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await sha256(concat(Uint8Array.of(1), r, p));
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("proof is too short");
    if (!equal(r, root)) throw new Error("proof does not lead to the checkpoint's root");
  }

  async function verifyBundle(bundle, vk) {
    const checks = [];
    const step = async (name, fn) => {
      try {
        const detail = await fn();
        checks.push({ name, ok: true, detail: detail || "" });
        return true;
      } catch (err) {
        checks.push({ name, ok: false, detail: String(err.message || err) });
        return false;
      }
    };
    const body = bundle.receipt;
    const sig = bundle.signature;
    let cp = null;
    await step("Ed25519 signature over the receipt (RFC 8785 canonical JSON)", async () => {
      if (!sig || sig.alg !== "ed25519") throw new Error("not an ed25519 signature");
      if (sig.key_id !== vk.kid) throw new Error(`signed by key ${sig.key_id}, not ${vk.kid}`);
      const ok = await crypto.subtle.verify(
        "Ed25519", vk.key, b64dec(sig.sig), enc.encode(canon(body)));
      if (!ok) throw new Error("signature does not verify: the receipt was altered");
      return `key ${vk.name} (${vk.kid})`;
    });
    await step("signed C2SP checkpoint", async () => {
      cp = await verifyCheckpoint(bundle.checkpoint, vk);
      if (bundle.tree_size !== undefined && bundle.tree_size !== cp.size) {
        throw new Error("bundle tree size differs from the checkpoint's");
      }
      return `${cp.origin}, tree size ${cp.size}`;
    });
    await step("RFC 9162 inclusion proof", async () => {
      if (!cp) throw new Error("no verified checkpoint");
      if (body.log_index !== bundle.log_index) throw new Error("log index mismatch");
      if (!Array.isArray(bundle.inclusion_proof) || bundle.inclusion_proof.length > 64) {
        throw new Error("no inclusion proof");
      }
      const leaf = enc.encode(canon({ receipt: body, signature: sig }));
      const leafHash = await sha256(concat(Uint8Array.of(0), leaf));
      const proof = bundle.inclusion_proof.map(b64dec);
      await verifyInclusion(body.log_index, cp.size, leafHash, proof, cp.root);
      return `leaf ${body.log_index} of ${cp.size}`;
    });
    return checks;
  }

  // -- page: receipt -----------------------------------------------------------------------
  async function receiptPage() {
    const section = $("#receipt");
    const rid = section.dataset.receiptId;
    const verdict = $("#verdict");
    const setVerdict = (state, text) => {
      verdict.dataset.verdict = state;
      verdict.className = "verdict " + state;
      verdict.textContent = text;
    };
    $("#pin").addEventListener("click", async () => {
      try {
        await parseVerifier($("#pin-key").value);
        localStorage.setItem(PIN, $("#pin-key").value.trim());
        location.reload();
      } catch (err) {
        setVerdict("invalid", "Not a verifier key: " + err.message);
      }
    });
    $("#unpin").addEventListener("click", () => {
      localStorage.removeItem(PIN);
      location.reload();
    });
    try {
      const [bundleResp, keysResp] = await Promise.all([
        fetch(`/console/api/receipts/${encodeURIComponent(rid)}`, { credentials: "same-origin" }),
        fetch("/console/api/log-key", { credentials: "same-origin" }),
      ]);
      if (!bundleResp.ok) throw new Error(`the gateway answered ${bundleResp.status}`);
      const bundle = await bundleResp.json();
      $("#receipt-body").textContent = JSON.stringify(bundle.receipt, null, 2);
      const pinned = localStorage.getItem(PIN);
      let vk;
      if (pinned) {
        vk = await parseVerifier(pinned);
        $("#log-key").textContent = `${vk.text} (pinned in this browser)`;
      } else {
        const served = (await keysResp.json()).keys || [];
        const want = bundle.signature && bundle.signature.key_id;
        const text = served.find((k) => split3(k)[1] === want) || served[0];
        if (!text) throw new Error("no log key");
        vk = await parseVerifier(text);
        $("#log-key").textContent = `${vk.text} (served by this gateway; pin your own to stop trusting it)`;
      }
      const checks = await verifyBundle(bundle, vk);
      const list = $("#checks");
      for (const c of checks) {
        const li = document.createElement("li");
        li.className = c.ok ? "ok" : "bad";
        li.textContent = `${c.ok ? "\u2713" : "\u2717"} ${c.name}${c.detail ? ": " + c.detail : ""}`;
        list.appendChild(li);
      }
      const bad = checks.find((c) => !c.ok);
      if (bad) setVerdict("invalid", `REJECTED in this browser: ${bad.detail}`);
      else setVerdict("valid", "VERIFIED in this browser: signature, checkpoint and inclusion proof");
    } catch (err) {
      setVerdict("invalid", "REJECTED in this browser: " + err.message);
    }
  }

  // -- the approver's key, kept in this browser --------------------------------------------
  const PKCS8_ED25519 = Uint8Array.from([
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
  ]);
  let approver = null;

  function idb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open("hybridgate-console", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("keys");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  async function idbDo(mode, fn) {
    const db = await idb();
    return new Promise((resolve, reject) => {
      const tx = db.transaction("keys", mode);
      const req = fn(tx.objectStore("keys"));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  }

  async function importPrivate(text) {
    text = text.trim();
    if (!text.startsWith("PRIVATE+KEY+")) throw new Error("not a PRIVATE+KEY+ string");
    const [name, kid, b64] = split3(text.slice("PRIVATE+KEY+".length));
    const raw = b64dec(b64);
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 private key");
    const pkcs8 = concat(PKCS8_ED25519, raw.slice(1));
    const probe = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
    const pub = b64urlDec((await crypto.subtle.exportKey("jwk", probe)).x);
    if ((await keyId(name, pub)) !== kid) throw new Error("key id does not match the key");
    const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
    return { name, kid, key, verifier: `${name}+${kid}+${b64enc(concat(Uint8Array.of(1), pub))}` };
  }

  async function generate(name) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) throw new Error("give a name (letters, digits, _ . -)");
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    const kid = await keyId(name, pub);
    return { name, kid, key: pair.privateKey, verifier: `${name}+${kid}+${b64enc(concat(Uint8Array.of(1), pub))}` };
  }

  function showKey() {
    const status = $("#key-status");
    if (!status) return;
    status.dataset.loaded = approver ? "1" : "0";
    status.textContent = approver
      ? `Signing as ${approver.name} (key ${approver.kid}), key kept in this browser.`
      : "No key loaded in this browser.";
    $("#key-public").textContent = approver ? approver.verifier : "";
  }
  const busy = () => {
    const el = $("#action-result");
    el.textContent = "Working\u2026";
    el.className = "";
    el.dataset.state = "busy";
  };
  const result = (text, ok) => {
    const el = $("#action-result");
    el.textContent = text;
    el.className = ok ? "ok" : "bad";
    el.dataset.state = ok ? "ok" : "error";
  };

  async function keyPanel() {
    if (!$("#key-panel")) return;
    try {
      approver = (await idbDo("readonly", (s) => s.get("approver"))) || null;
    } catch (_) {
      approver = null;
    }
    showKey();
    const keep = async (k) => {
      approver = k;
      await idbDo("readwrite", (s) => s.put(k, "approver"));
      showKey();
    };
    $("#key-load").addEventListener("click", async () => {
      busy();
      try {
        const file = $("#key-file").files[0];
        const text = file ? await file.text() : $("#key-text").value;
        await keep(await importPrivate(text));
        $("#key-text").value = "";
        result("Key loaded.", true);
      } catch (err) {
        result("Cannot load the key: " + err.message, false);
      }
    });
    $("#key-generate").addEventListener("click", async () => {
      busy();
      try {
        await keep(await generate($("#gen-name").value.trim()));
        result("Key generated. Register the public key above as an approver.", true);
      } catch (err) {
        result("Cannot generate a key: " + err.message, false);
      }
    });
    $("#key-forget").addEventListener("click", async () => {
      approver = null;
      await idbDo("readwrite", (s) => s.delete("approver"));
      showKey();
    });
  }

  const csrf = () => $('meta[name="csrf-token"]').content;
  async function post(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf() },
      body: JSON.stringify(body),
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error((data.error && data.error.message) || `HTTP ${resp.status}`);
    return data;
  }
  async function sign(payload) {
    if (!approver) throw new Error("load your approver key first");
    const sig = await crypto.subtle.sign("Ed25519", approver.key, enc.encode(payload));
    return b64enc(new Uint8Array(sig));
  }
  const dataBlock = (id) => JSON.parse($("#" + id).textContent);

  // -- page: held actions --------------------------------------------------------------------
  async function approvalsPage() {
    await keyPanel();
    const held = dataBlock("held-data");
    const decide = async (id, decision) => {
      busy();
      try {
        const h = held.find((x) => x.approval_id === id);
        if (!h) throw new Error("unknown approval");
        const ph = hex(await sha256(enc.encode(canon(h.params))));
        if (ph !== h.params_hash) throw new Error("the params shown do not match their hash; not signing");
        const payload = canon({
          approval_id: id, decision, action: h.action, params_hash: h.params_hash, agent_id: h.agent_id,
        });
        const signature = await sign(payload);
        const out = await post(`/console/api/approvals/${id}`, { decision, approver: approver.name, signature });
        result(`${out.status} ${id} (signed by ${approver.name}, receipt ${out.receipt_id})`, true);
        const card = $("#held-" + id);
        if (card) card.remove();
      } catch (err) {
        result(`Not ${decision}d: ${err.message}`, false);
      }
    };
    for (const b of $$("button.approve")) b.addEventListener("click", () => decide(b.dataset.id, "approve"));
    for (const b of $$("button.deny")) b.addEventListener("click", () => decide(b.dataset.id, "reject"));
  }

  // -- page: policy proposals -----------------------------------------------------------------
  async function proposalsPage() {
    await keyPanel();
    const proposals = $("#proposal-data") ? dataBlock("proposal-data") : [];
    for (const b of $$("button.sign")) {
      b.addEventListener("click", async () => {
        busy();
        try {
          const p = proposals.find((x) => x.proposal_id === b.dataset.id);
          const h = hex(await sha256(enc.encode(canon(p.policy))));
          if (h !== p.policy_hash) throw new Error("the policy shown does not match its hash; not signing");
          const payload = canon({
            type: "hybridgate-policy-approval/v1",
            proposal_id: p.proposal_id,
            policy_hash: p.policy_hash,
            base_policy_hash: p.base_policy_hash,
          });
          const signature = await sign(payload);
          const out = await post(`/console/api/proposals/${p.proposal_id}/signatures`, {
            approver: approver.name, signature,
          });
          result(`Signed: ${out.valid_signers.length} of ${out.threshold} (${out.valid_signers.join(", ")})`, true);
          const line = $(`#proposal-${p.proposal_id} .signers`);
          if (line) line.textContent = `signed by ${out.valid_signers.join(", ")} (${out.valid_signers.length} of ${out.threshold})`;
        } catch (err) {
          result("Not signed: " + err.message, false);
        }
      });
    }
    for (const b of $$("button.apply")) {
      b.addEventListener("click", async () => {
        busy();
        try {
          const out = await post(`/console/api/proposals/${b.dataset.id}/apply`, {});
          result(`Applied (${out.approval}): policy ${out.policy_hash}, receipt ${out.receipt_id}`, true);
        } catch (err) {
          result("Not applied: " + err.message, false);
        }
      });
    }
  }

  // -- page: overview, live traffic ---------------------------------------------------------
  function utc(ns) {
    if (typeof ns !== "string" || !/^[0-9]{1,20}$/.test(ns)) return "";
    const d = new Date(Number(BigInt(ns) / 1000000n));
    return d.toISOString().replace("T", " ").slice(0, 19);
  }
  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function trafficRow(r) {
    const tr = document.createElement("tr");
    tr.className = "traffic";
    tr.dataset.receipt = r.receipt_id;
    cell(tr, utc(r.time_ns));
    cell(tr, r.team);
    cell(tr, r.virtual_model);
    cell(tr, r.route || "\u2014");
    cell(tr, r.location || "\u2014");
    const classes = cell(tr, "");
    const list = Array.isArray(r.data_classes) ? r.data_classes : [];
    if (!list.length) {
      const none = document.createElement("span");
      none.className = "muted";
      none.textContent = "none";
      classes.appendChild(none);
    }
    for (const c of list) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = c;
      classes.appendChild(tag);
      classes.appendChild(document.createTextNode(" "));
    }
    cell(tr, r.action);
    cell(tr, r.masked);
    cell(tr, `${r.status} ${r.outcome}`, r.outcome === "ok" ? "ok" : "bad");
    const link = document.createElement("a");
    link.href = `/console/receipts/${encodeURIComponent(r.receipt_id)}`;
    link.textContent = "verify";
    cell(tr, "").appendChild(link);
    return tr;
  }
  function overviewPage() {
    const body = $("#traffic tbody");
    if (!body) return;
    const refresh = async () => {
      try {
        const resp = await fetch("/console/api/traffic", { credentials: "same-origin" });
        if (!resp.ok) return;
        const rows = (await resp.json()).data || [];
        const first = body.querySelector("tr.traffic");
        if (rows.length && first && first.dataset.receipt === rows[0].receipt_id) return;
        body.replaceChildren(...rows.map(trafficRow));
        $("#live").dataset.updated = String(Date.now());
      } catch (_) {
        // the next tick tries again
      }
    };
    setInterval(refresh, 3000);
  }

  const pages = {
    overview: overviewPage, receipt: receiptPage, approvals: approvalsPage, proposals: proposalsPage,
  };
  const run = pages[document.body.dataset.page];
  if (run) run();
})();
