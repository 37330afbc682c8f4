#!/usr/bin/env bash
# Runs Palisade's CI gates and the tools people use today on the same fixtures, and prints,
# per fixture, what each tool reports and how long it took (wall time):
#
#   palisade lint            vs  Spectral + @stoplight/spectral-owasp-ruleset (npm)
#   palisade secrets scan    vs  Yelp's detect-secrets (PyPI)
#
# Lint fixtures: every spec under crates/palisade-ci-gates/testdata/lint (one that triggers
# each rule, one that does not, a clean spec, a spec split over files) and the demo's specs.
# Findings are compared by rule (each Spectral id maps to one Palisade rule; the mapping is
# read from Palisade's own SARIF output) and by place (Spectral's JSON path as an RFC 6901
# JSON Pointer). Secret fixtures: each [[case]] of testdata/secrets/cases.toml written out as
# one file of true positives and one of look-alikes.
#
# Not part of CI: it needs the npm registry and PyPI. Tools are installed once under
# $PEERS_DIR (default: target/peers). PALISADE=path/to/palisade skips building a release
# binary. Usage: scripts/compare-peers.sh [--no-install]
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS_DIR="${PEERS_DIR:-$PWD/target/peers}"
SPECTRAL_VERSION="${SPECTRAL_VERSION:-6}"
OWASP_VERSION="${OWASP_VERSION:-2}"
DETECT_SECRETS_VERSION="${DETECT_SECRETS_VERSION:-1.5.0}"
mkdir -p "$PEERS_DIR"

log() { printf '==> %s\n' "$*" >&2; }

if [ "${1:-}" != "--no-install" ]; then
  if [ ! -x "$PEERS_DIR/node_modules/.bin/spectral" ]; then
    log "installing @stoplight/spectral-cli@$SPECTRAL_VERSION and @stoplight/spectral-owasp-ruleset@$OWASP_VERSION (npm)"
    npm install --prefix "$PEERS_DIR" --no-audit --no-fund --loglevel=error \
      "@stoplight/spectral-cli@$SPECTRAL_VERSION" "@stoplight/spectral-owasp-ruleset@$OWASP_VERSION" >&2
  fi
  if [ ! -x "$PEERS_DIR/venv/bin/detect-secrets" ]; then
    log "installing detect-secrets==$DETECT_SECRETS_VERSION (pip, in a venv)"
    python3 -m venv "$PEERS_DIR/venv"
    "$PEERS_DIR/venv/bin/pip" install --quiet "detect-secrets==$DETECT_SECRETS_VERSION" >&2
  fi
fi

# The OWASP ruleset as Spectral's docs load it: a JavaScript ruleset that extends it.
cat >"$PEERS_DIR/owasp-ruleset.mjs" <<'EOF'
import owasp from "@stoplight/spectral-owasp-ruleset";
export default { extends: [owasp] };
EOF

if [ -z "${PALISADE:-}" ]; then
  log "building palisade (release)"
  cargo build --quiet --release --bin palisade
  PALISADE="${CARGO_TARGET_DIR:-target}/release/palisade"
fi

export PALISADE PEERS_DIR
exec python3 - <<'PY'
import json, os, subprocess, sys, tempfile, time, tomllib
from collections import Counter
from pathlib import Path

palisade = os.environ["PALISADE"]
peers = Path(os.environ["PEERS_DIR"])
spectral = [str(peers / "node_modules/.bin/spectral")]
detect = str(peers / "venv/bin/detect-secrets")
root = Path.cwd()

def run(cmd, cwd=root):
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return p, (time.perf_counter() - start) * 1000

def pointer(path):
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in path)

def versions():
    s, _ = run(spectral + ["--version"])
    d, _ = run([detect, "--version"])
    owasp = json.loads((peers / "node_modules/@stoplight/spectral-owasp-ruleset/package.json").read_text())["version"]
    p, _ = run([palisade, "--version"])
    return f"{p.stdout.strip()}; spectral-cli {s.stdout.strip()}, spectral-owasp-ruleset {owasp}; detect-secrets {d.stdout.strip()}"

print(f"# compare-peers: {versions()}")
print(f"# machine: {os.cpu_count()} CPUs; times are wall-clock milliseconds of one run per fixture\n")

# ---- lint ------------------------------------------------------------------------------
lint_root = root / "crates/palisade-ci-gates/testdata/lint"
fixtures = sorted((lint_root / "rules").glob("*.yaml"))
fixtures += [lint_root / "clean.yaml", lint_root / "refs/api.yaml", lint_root / "numeric-id.json"]
fixtures += sorted((root / "crates/palisade-demo/assets/specs").glob("*.yaml"))

# Spectral id -> Palisade rule, from Palisade's SARIF rule tags.
p, _ = run([palisade, "lint", "--format", "sarif", str(lint_root / "clean.yaml")])
mapping = {}
for rule in json.loads(p.stdout)["runs"][0]["tool"]["driver"]["rules"]:
    for tag in rule["properties"]["tags"]:
        if tag.startswith("spectral:"):
            mapping[tag[len("spectral:"):]] = rule["id"]

totals = Counter()
per_rule = {}  # palisade rule -> Counter(agree, palisade_only, spectral_only)
times = {"palisade": [], "spectral": []}
print("## palisade lint vs Spectral OWASP\n")
for f in fixtures:
    rel = f.relative_to(root)
    p, t_pal = run([palisade, "lint", "--format", "json", "--fail-on", "info", str(rel)])
    if p.returncode not in (0, 1):
        print(f"{rel}: palisade failed: {p.stderr.strip()}")
        continue
    pal = {(x["rule_id"], x["properties"]["pointer"], x["location"]["path"])
           for x in json.loads(p.stdout)["findings"]}
    s, t_spe = run(spectral + ["lint", "--quiet", "--format", "json", "--ruleset",
                               str(peers / "owasp-ruleset.mjs"), str(rel)])
    try:
        raw = json.loads(s.stdout or "[]")
    except json.JSONDecodeError:
        print(f"{rel}: spectral failed: {(s.stderr or s.stdout).strip()[:300]}")
        continue
    spe = set()
    unmapped = Counter()
    for x in raw:
        code = x.get("code", "")
        if not code.startswith("owasp:"):
            unmapped[code] += 1
            continue
        src = Path(x.get("source") or rel)
        try:
            src = src.resolve().relative_to(root)
        except ValueError:
            pass
        spe.add((mapping.get(code, code), pointer(x.get("path", [])), str(src)))
    times["palisade"].append(t_pal)
    times["spectral"].append(t_spe)
    pal_rules = Counter(r for r, _, _ in pal)
    spe_rules = Counter(r for r, _, _ in spe)
    both_places = pal & spe
    print(f"### {rel}   palisade {t_pal:.0f} ms, spectral {t_spe:.0f} ms")
    for rule in sorted(set(pal_rules) | set(spe_rules)):
        a, b = pal_rules[rule], spe_rules[rule]
        same = sum(1 for x in both_places if x[0] == rule)
        c = per_rule.setdefault(rule, Counter())
        c["palisade"] += a; c["spectral"] += b; c["same place"] += same
        mark = "=" if a == b else ("+" if a > b else "-")
        print(f"  {mark} {rule:<42} palisade {a:>3}  spectral {b:>3}  same place {same:>3}")
        # Where the two disagree: places only one of them reports.
        for who, mine, theirs in (("palisade only", pal, spe), ("spectral only", spe, pal)):
            for r, ptr, src in sorted(mine - theirs):
                if r == rule and (len(fixtures) > 0):
                    where = "" if src == str(rel) else f" ({src})"
                    print(f"      {who}: {ptr or '(root)'}{where}")
    for code, n in sorted(unmapped.items()):
        print(f"  ! spectral {code}: {n} (not an OWASP rule: e.g. a parse or ref diagnostic)")
    totals["palisade"] += len(pal); totals["spectral"] += len(spe); totals["same place"] += len(both_places)
    print()

print("## lint totals by rule (all fixtures)\n")
print(f"  {'rule':<42} {'palisade':>8} {'spectral':>8} {'same place':>10}")
for rule in sorted(per_rule):
    c = per_rule[rule]
    print(f"  {rule:<42} {c['palisade']:>8} {c['spectral']:>8} {c['same place']:>10}")
print(f"  {'total':<42} {totals['palisade']:>8} {totals['spectral']:>8} {totals['same place']:>10}")
for tool, ts in times.items():
    ts = sorted(ts)
    print(f"  {tool} wall time per fixture: median {ts[len(ts)//2]:.0f} ms, total {sum(ts):.0f} ms over {len(ts)} fixtures")
print()

# ---- secrets ---------------------------------------------------------------------------
print("## palisade secrets scan vs detect-secrets\n")
cases = tomllib.loads((root / "crates/palisade-ci-gates/testdata/secrets/cases.toml").read_text())["case"]
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    for c in cases:
        (tmp / f"{c['rule']}.positive.txt").write_text("\n".join(c["positive"]) + "\n")
        (tmp / f"{c['rule']}.negative.txt").write_text("\n".join(c["negative"]) + "\n")
    p, t_pal = run([palisade, "secrets", "scan", "--format", "json", "."], cwd=tmp)
    pal = Counter(x["location"]["path"] for x in json.loads(p.stdout)["findings"])
    d, t_det = run([detect, "scan", "--all-files", "."], cwd=tmp)
    det_raw = json.loads(d.stdout)["results"]
    det = Counter({path: len(v) for path, v in det_raw.items()})
    det_types = {path: sorted({x["type"] for x in v}) for path, v in det_raw.items()}
    print(f"  one run over {2 * len(cases)} files: palisade {t_pal:.0f} ms, detect-secrets {t_det:.0f} ms\n")
    summary = Counter()
    for c in cases:
        for kind in ("positive", "negative"):
            name = f"{c['rule']}.{kind}.txt"
            lines = len(c[kind])
            a, b = pal[name], det[name]
            if kind == "positive":
                summary["positive lines"] += lines
                summary["palisade hits on positives"] += min(a, lines)
                summary["detect-secrets hits on positives"] += min(b, lines)
                summary["positive files found by palisade"] += a > 0
                summary["positive files found by detect-secrets"] += b > 0
            else:
                summary["negative lines"] += lines
                summary["palisade hits on look-alikes"] += a
                summary["detect-secrets hits on look-alikes"] += b
            types = ", ".join(det_types.get(name, []))
            print(f"  {name:<48} palisade {a:>2}  detect-secrets {b:>2}  {types}")
    print()
    for k, v in summary.items():
        print(f"  {k:<40} {v}")
PY
