#!/usr/bin/env bash
# table.sh --update|--check TSV: the compatibility table of README.md and docs/qemu-upgrade.1,
# made from what tests/e2e/qemu-matrix.t saw (TSV lines: OLD NEW KIND OUTCOME), never typed.
# --update rewrites the part between the markers in both files; --check says how they differ
# from the run (exit 1), so that a change in behaviour shows until the table is made again:
#   make check ... ; tests/qemu-versions/table.sh --update build/qemu-matrix.tsv
set -euo pipefail
mode=${1:?usage: table.sh --update|--check TSV}
tsv=${2:?usage: table.sh --update|--check TSV}
root=$(cd "$(dirname "$0")/../.." && pwd)
[ -s "$tsv" ] || { echo "table.sh: $tsv is empty or missing: run tests/e2e/qemu-matrix.t first" >&2; exit 2; }

# One row per pair, in the order the run made them; one column per kind of guest RAM.
cells() {
	awk -F'\t' -v fmt="$1" '
	function say(o) {
		if (o == "zero-copy") return "zero-copy"
		if (o ~ /^copy:/) return "copied once (" substr(o, 6) ")"
		if (o == "refused:machine") return "refused: the new QEMU lacks the VM'"'"'s machine type"
		return o
	}
	{ k = $1 " -> " $2; if (!(k in seen)) { seen[k] = 1; order[++n] = k } c[k, $3] = say($4) }
	END {
		if (fmt == "md") {
			print "| old -> new QEMU | shared memfd | shared file | anonymous (`-m`) |"
			print "| --- | --- | --- | --- |"
			for (i = 1; i <= n; i++) printf "| %s | %s | %s | %s |\n", order[i], c[order[i], "memfd"], c[order[i], "file"], c[order[i], "anon"]
		} else {
			for (i = 1; i <= n; i++) {
				printf ".TP\n%s\n", order[i]
				printf "shared memfd: %s; shared file: %s; anonymous: %s\n", c[order[i], "memfd"], c[order[i], "file"], c[order[i], "anon"]
			}
		}
	}' "$tsv"
}

# The file with the part between the lines matching $2 and $3 replaced by stdin's text.
splice() {
	local file=$1 begin=$2 end=$3 body
	body=$(cat)
	grep -qF "$begin" "$file" && grep -qF "$end" "$file" ||
		{ echo "table.sh: $file has no '$begin' ... '$end' markers" >&2; return 2; }
	# Through the environment: awk -v would read backslashes in them as escapes.
	B=$begin E=$end BODY=$body awk '
		index($0, ENVIRON["B"]) == 1 { print; print ENVIRON["BODY"]; skip = 1; next }
		index($0, ENVIRON["E"]) == 1 { skip = 0 }
		!skip { print }' "$file"
}

readme_begin='<!-- qemu-matrix begin: made by tests/qemu-versions/table.sh from tests/e2e/qemu-matrix.t; do not edit -->'
readme_end='<!-- qemu-matrix end -->'
man_begin='.\" qemu-matrix begin'
man_end='.\" qemu-matrix end'
new_readme=$(cells md | splice "$root/README.md" "$readme_begin" "$readme_end")
new_man=$(cells man | sed 's/-/\\-/g' |
	splice "$root/docs/qemu-upgrade.1" "$man_begin" "$man_end")
case $mode in
--update)
	printf '%s\n' "$new_readme" >"$root/README.md"
	printf '%s\n' "$new_man" >"$root/docs/qemu-upgrade.1"
	;;
--check)
	rc=0
	diff <(printf '%s\n' "$new_readme") "$root/README.md" >&2 || rc=1
	diff <(printf '%s\n' "$new_man") "$root/docs/qemu-upgrade.1" >&2 || rc=1
	[ "$rc" = 0 ] || echo "table.sh: the tables differ from the run: tests/qemu-versions/table.sh --update $tsv" >&2
	exit $rc
	;;
*) echo "table.sh: --update or --check" >&2; exit 2 ;;
esac
