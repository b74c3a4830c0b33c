#!/usr/bin/env bash
# Time and size of a fresh install of the committed package (git HEAD) into a new virtualenv, once
# per extras set, at the versions of constraints.txt with pip's cache off (every wheel fetched):
# writes experiments/results/install/install_size.json and the table of docs/install.md from it.
#
#   bash benchmarks/install_size.sh [EXTRAS ...]      (default: core all; "core" is no extra)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/experiments/results/install/install_size.json"
work="$(mktemp -d /tmp/install_size.XXXXXX)"
trap 'rm -rf "$work"' EXIT
git -C "$root" archive HEAD | tar -x -C "$work" --one-top-level=src
mkdir -p "$(dirname "$out")"
rows="$work/rows.jsonl"
for extras in "${@:-core all}"; do
  for name in $extras; do
    target="$work/src"; [ "$name" = core ] || target="$work/src[$name]"
    python3 -m venv "$work/venv-$name"
    start=$(date +%s.%N)
    "$work/venv-$name/bin/pip" install -q --no-cache-dir -c "$work/src/constraints.txt" "$target" 2>/dev/null
    end=$(date +%s.%N)
    site="$("$work/venv-$name/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '{"extras": "%s", "seconds": %s, "venv_bytes": %s, "distributions": %s, "warp_lang_bytes": %s}\n' \
      "$name" "$(echo "$end - $start" | bc)" "$(du -sb "$work/venv-$name" | cut -f1)" \
      "$("$work/venv-$name/bin/pip" list --format=freeze 2>/dev/null | grep -vc '^\(pip\|setuptools\)==')" \
      "$(du -sbc "$site"/warp "$site"/warp_lang-*.dist-info 2>/dev/null | tail -n 1 | cut -f1)" >> "$rows"
    rm -rf "$work/venv-$name"
  done
done
python3 - "$rows" "$out" "$root/docs/install.md" <<'PY'
import datetime, json, os, platform, subprocess, sys
rows, out, doc = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
result = {"date": datetime.date.today().isoformat(), "machine": f"{cpu}, {os.cpu_count()} cores, {platform.system()}",
          "python": platform.python_version(),
          "command": "python3 -m venv V && V/bin/pip install --no-cache-dir -c constraints.txt '.[EXTRAS]'",
          "installs": [json.loads(line) for line in open(rows)]}
json.dump(result, open(out, "w"), indent=1)
mib = lambda b: f"{b / 2**20:,.0f} MiB"
table = ["| install | time | virtualenv size | distributions | of which warp-lang |", "|---|---|---|---|---|"]
for r in result["installs"]:
    name = "core: `pip install .`" if r["extras"] == "core" else f"`pip install '.[{r['extras']}]'`"
    table.append(f"| {name} | {r['seconds'] / 60:.1f} min | {mib(r['venv_bytes'])} | {r['distributions']} "
                 f"| {mib(r['warp_lang_bytes'])} |")
table.append(f"\nMeasured {result['date']} on {result['machine']}, Python {result['python']}, with "
             f"`bash benchmarks/install_size.sh` ({result['command']}, pip's cache off).")
text = open(doc).read()
start, end = "<!-- install-size: start -->\n", "<!-- install-size: end -->"
head, rest = text.split(start)
open(doc, "w").write(head + start + "\n".join(table) + "\n" + end + rest.split(end, 1)[1])
PY
cat "$out"
