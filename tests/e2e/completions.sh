#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# End-to-end: the shell completions in completions/ (bash, zsh, fish),
# loaded from the source tree the way each shell loads an installed one,
# and asked to complete real command lines:
#
#   - "postbote --acc" offers --account;
#   - "postbote -C FILE --account " offers exactly the accounts FILE
#     defines (including "default" from "account default : work", not
#     commented-out ones, with quotes and CRLF line ends handled), also in
#     the forms -CFILE and --account=NAME and with -C given twice;
#   - without -C, the accounts of $XDG_CONFIG_HOME/postbote/config, else
#     of ~/.config/postbote/config (postbote's own search order);
#   - "postbote -C " and "postbote -X DIR/a" offer files;
#   - -N offers the DSN conditions (continuing a comma list), -R full/hdrs;
#   - every option in the OPTIONS section of man/postbote.8 is offered
#     after "postbote -", so a new option without completion fails here;
#   - options end at the first recipient, and recipients are user names.
#
# bash runs the bash-completion machinery (sourced from
# /usr/share/bash-completion/bash_completion, COMP_WORDS/COMP_CWORD set,
# the function called), and also without bash-completion. zsh runs an
# interactive zsh under zsh/zpty with compinit and the source tree in
# $fpath; compadd is wrapped to record every match, and a completion
# widget bound to a key runs _main_complete. fish runs "complete -C" with
# the source tree in $fish_complete_path. A shell that is not installed is
# skipped (CI installs bash-completion, zsh and fish).
# The COMPLETE functions are called through a variable; in_env's
# subshell changes HOME and XDG_CONFIG_HOME on purpose.
# shellcheck disable=SC2317,SC2030,SC2031
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh disable=SC1091 # followed with shellcheck -x
. "$here/lib.sh"

comp_dir=${top_srcdir:?}/completions
tmp=$E2E_TMP
bash_completion_main=${BASH_COMPLETION_MAIN:-/usr/share/bash-completion/bash_completion}

# --- fixtures --------------------------------------------------------------

# An empty home: no user configuration, no ~/.bash_completion, no rc files.
mkdir -p "$tmp/home" "$tmp/files/sub" "$tmp/xdg/postbote" \
	"$tmp/home2/.config/postbote" "$tmp/out"
: >"$tmp/files/alpha.conf"
: >"$tmp/files/beta.rc"

# The test configuration: six account lines give five accounts.
{
	printf '%s\n' \
		'# a test configuration' \
		'defaults' \
		'tls on' \
		'# account commented' \
		'' \
		'  account work' \
		'host smtp.example.com' \
		'account	home : work' \
		'account "quoted"' \
		'account default : work'
	printf 'account crlf\r\nhost smtp.example.org\r\n'
} >"$tmp/conf"
expected_accounts='crlf default home quoted work'

printf 'account xdgacct\nhost a.example\n' >"$tmp/xdg/postbote/config"
# Settings before any section: msmtp's account "default".
printf 'host b.example\naccount homeacct\nhost c.example\n' \
	>"$tmp/home2/.config/postbote/config"

# The options of postbote(8): every option named at the head of an entry
# of the OPTIONS section ("--" itself is not an option to offer).
mapfile -t man_options < <(
	awk '/^\.SH OPTIONS/ { o = 1; next } /^\.S[HS]/ { o = 0 }
	     o && tp { print; tp = 0 } o && /^\.TP/ { tp = 1 }' \
		"$top_srcdir/man/postbote.8" |
		sed 's/\\-/-/g' |
		grep -oE '(^|[ "])--?[A-Za-z][-A-Za-z0-9]*' | tr -d ' "' | sort -u)
if [ "${#man_options[@]}" -ge 20 ]; then
	ok "man/postbote.8 lists ${#man_options[@]} options"
else
	not_ok "man/postbote.8 lists the options" \
		"found only: ${man_options[*]}"
fi

# --- assertions on a list of candidates (one per line in FILE) -------------

# has NAME FILE WORD...: every WORD is a line of FILE.
has() {
	local name=$1 file=$2 w missing=()
	shift 2
	for w in "$@"; do
		grep -qxF -e "$w" "$file" || missing+=("$w")
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		ok "$name"
	else
		not_ok "$name" "missing: ${missing[*]}
offered: $(head -c 2000 "$file" | tr '\n' ' ')"
	fi
}

# lacks NAME FILE WORD...: no WORD is a line of FILE.
lacks() {
	local name=$1 file=$2 w found=()
	shift 2
	for w in "$@"; do
		grep -qxF -e "$w" "$file" && found+=("$w")
	done
	if [ "${#found[@]}" -eq 0 ]; then
		ok "$name"
	else
		not_ok "$name" "offered, but should not be: ${found[*]}"
	fi
}

# exactly NAME FILE "WORD ...": FILE's lines, sorted, are the WORDs.
exactly() {
	local name=$1 file=$2 want=$3 got
	got=$(sort "$file" | tr '\n' ' ')
	got=${got% }
	if [ "$got" = "$want" ]; then
		ok "$name"
	else
		not_ok "$name" "expected: $want
offered:  $got"
	fi
}

# ends_with NAME FILE SUFFIX: some line of FILE ends with SUFFIX.
ends_with() {
	if grep -qE -e "$(printf '%s' "$3" | sed 's/[.[\*^$]/\\&/g')\$" "$2"; then
		ok "$1"
	else
		not_ok "$1" "no candidate ending in $3; offered: $(tr '\n' ' ' <"$2")"
	fi
}

# The checks every shell must pass. COMPLETE LINE prints the candidates
# for LINE (the cursor at its end), one per line, and runs with the empty
# home and $tmp/files as the working directory.
common_checks() {
	local sh=$1 complete=$2 out=$tmp/out/$1
	local -a options=()
	local o

	$complete 'postbote --acc' >"$out.1"
	exactly "$sh: 'postbote --acc' offers --account" "$out.1" --account

	$complete "postbote -C $tmp/conf --account " >"$out.2"
	exactly "$sh: 'postbote -C FILE --account ' offers FILE's accounts" \
		"$out.2" "$expected_accounts"

	# fish gives the whole word
	$complete "postbote -t -C$tmp/conf -v --account=h" |
		sed 's/^--account=//' >"$out.3"
	exactly "$sh: -CFILE and --account=h offer home" "$out.3" home

	$complete "postbote -C $tmp/files/alpha.conf -C $tmp/conf --account w" \
		>"$out.4"
	exactly "$sh: the last -C counts" "$out.4" work

	$complete 'postbote --account ' >"$out.5"
	if [ -e /etc/postbote.conf ]; then
		skip "$sh: no configuration file, no accounts" \
			"/etc/postbote.conf exists"
	else
		exactly "$sh: no configuration file, no accounts" "$out.5" ''
	fi

	$complete 'postbote -C ' >"$out.6"
	has "$sh: 'postbote -C ' offers files" "$out.6" alpha.conf beta.rc

	$complete "postbote -X $tmp/files/al" >"$out.7"
	ends_with "$sh: 'postbote -X DIR/al' offers DIR/alpha.conf" "$out.7" \
		alpha.conf
	lacks "$sh: 'postbote -X DIR/al' offers only matching files" "$out.7" \
		beta.rc "$tmp/files/beta.rc"

	$complete 'postbote -N ' >"$out.8"
	exactly "$sh: -N offers the DSN conditions" "$out.8" \
		'delay failure never success'

	$complete 'postbote -N success,' >"$out.9"
	sed -i 's/.*,//' "$out.9"
	exactly "$sh: -N continues a list without repeating" "$out.9" \
		'delay failure'

	$complete 'postbote -R ' >"$out.10"
	exactly "$sh: -R offers full and hdrs" "$out.10" 'full hdrs'

	$complete 'postbote -' >"$out.11"
	for o in "${man_options[@]}"; do
		options+=("$o")
	done
	has "$sh: 'postbote -' offers every option of postbote(8)" "$out.11" \
		"${options[@]}"

	$complete 'postbote -b' >"$out.12"
	exactly "$sh: 'postbote -b' offers the modes" "$out.12" \
		'-bi -bm -bp -bs -bv'

	$complete 'postbote -i root -' >"$out.13"
	lacks "$sh: no options after the first recipient" "$out.13" \
		--account -C -t -v

	$complete 'postbote -- -' >"$out.14"
	lacks "$sh: no options after --" "$out.14" --account -C -t

	$complete 'postbote -i ro' >"$out.15"
	has "$sh: recipients are user names" "$out.15" root
}

# The default configuration search, for a shell whose COMPLETE honours
# the environment it is run in.
search_checks() {
	local sh=$1 complete=$2 out=$tmp/out/$1
	XDG_CONFIG_HOME=$tmp/xdg HOME=$tmp/home2 \
		$complete 'postbote --account ' >"$out.xdg"
	exactly "$sh: without -C, \$XDG_CONFIG_HOME/postbote/config" \
		"$out.xdg" xdgacct
	XDG_CONFIG_HOME='' HOME=$tmp/home2 \
		$complete 'postbote --account ' >"$out.home"
	exactly "$sh: without -C and XDG_CONFIG_HOME, ~/.config/postbote/config" \
		"$out.home" 'default homeacct'
}

# Run a command with the test's environment: the empty home, no XDG
# variables but those given, $tmp/files as working directory.
in_env() {
	(
		cd "$tmp/files" || exit 99
		export HOME=${HOME_OVERRIDE:-$tmp/home}
		unset XDG_DATA_HOME XDG_DATA_DIRS XDG_CACHE_HOME VISUAL EDITOR
		if [ -n "${XDG_OVERRIDE:-}" ]; then
			export XDG_CONFIG_HOME=$XDG_OVERRIDE
		else
			unset XDG_CONFIG_HOME
		fi
		"$@"
	)
}

# --- bash ------------------------------------------------------------------

# The bash harness: split LINE into words as readline does (at blanks, and
# "=" and ":" as words of their own, as in COMP_WORDBREAKS), set COMP_*,
# call the function "complete -p postbote" names, print COMPREPLY.
cat >"$tmp/bash-complete.sh" <<'EOF'
if [ "$WITH_BASH_COMPLETION" = 1 ]; then
	. "$BASH_COMPLETION_MAIN" || exit 98
fi
. "$COMP_FILE" || exit 98
line=$1
COMP_LINE=$line
COMP_POINT=${#line}
COMP_TYPE=9
COMP_KEY=9
read -ra raw <<<"$line"
COMP_WORDS=()
for w in "${raw[@]}"; do
	while [[ $w =~ ^([^=:]*)([=:])(.*)$ ]]; do
		[[ -n ${BASH_REMATCH[1]} ]] && COMP_WORDS+=("${BASH_REMATCH[1]}")
		COMP_WORDS+=("${BASH_REMATCH[2]}")
		w=${BASH_REMATCH[3]}
	done
	[[ -n $w ]] && COMP_WORDS+=("$w")
done
[[ $line == *[[:space:]] ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
spec=$(complete -p postbote) || exit 97
[[ $spec =~ -F\ ([^ ]+) ]] || exit 97
func=${BASH_REMATCH[1]}
COMPREPLY=()
"$func" postbote "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
[ "${#COMPREPLY[@]}" -gt 0 ] && printf '%s\n' "${COMPREPLY[@]}"
exit 0
EOF

bash_with_bc() {
	in_env env WITH_BASH_COMPLETION=1 BASH_COMPLETION_MAIN="$bash_completion_main" \
		COMP_FILE="$comp_dir/postbote.bash" \
		bash --norc --noprofile "$tmp/bash-complete.sh" "$1"
}
bash_without_bc() {
	in_env env WITH_BASH_COMPLETION=0 COMP_FILE="$comp_dir/postbote.bash" \
		bash --norc --noprofile "$tmp/bash-complete.sh" "$1"
}
bash_with_bc_env() {
	HOME_OVERRIDE=${HOME:-} XDG_OVERRIDE=${XDG_CONFIG_HOME:-} bash_with_bc "$1"
}

if bash -n "$comp_dir/postbote.bash" 2>"$tmp/out/bash-syntax"; then
	ok "bash: completions/postbote.bash parses"
else
	not_ok "bash: completions/postbote.bash parses" "$(cat "$tmp/out/bash-syntax")"
fi

if [ -r "$bash_completion_main" ]; then
	common_checks bash bash_with_bc
	search_checks bash bash_with_bc_env

	# bash-completion finds the file by the command's name and loads it on
	# first use (BASH_COMPLETION_USER_DIR/completions, as in an install).
	mkdir -p "$tmp/bcdir/completions"
	cp "$comp_dir/postbote.bash" "$tmp/bcdir/completions/"
	# shellcheck disable=SC2016 # expanded by the inner shell
	if in_env env BASH_COMPLETION_USER_DIR="$tmp/bcdir" bash --norc --noprofile -c '
		. "$1" && __load_completion postbote && complete -p postbote' \
		_ "$bash_completion_main" >"$tmp/out/bash-load" 2>&1 &&
		grep -q -- '-F _postbote postbote$' "$tmp/out/bash-load"; then
		ok "bash: bash-completion loads postbote.bash on demand"
	else
		not_ok "bash: bash-completion loads postbote.bash on demand" \
			"$(cat "$tmp/out/bash-load")"
	fi
else
	skip "bash: bash-completion checks" \
		"bash-completion is not installed ($bash_completion_main)"
fi

# Plain bash, without the bash-completion package.
bash_without_bc 'postbote --acc' >"$tmp/out/bash-plain.1"
exactly "bash without bash-completion: --acc offers --account" \
	"$tmp/out/bash-plain.1" --account
bash_without_bc "postbote -C $tmp/conf --account " >"$tmp/out/bash-plain.2"
exactly "bash without bash-completion: --account offers the accounts" \
	"$tmp/out/bash-plain.2" "$expected_accounts"
bash_without_bc "postbote -C $tmp/conf --account=" >"$tmp/out/bash-plain.3"
exactly "bash without bash-completion: --account= offers the accounts" \
	"$tmp/out/bash-plain.3" "$expected_accounts"
bash_without_bc 'postbote -C ' >"$tmp/out/bash-plain.4"
has "bash without bash-completion: -C offers files" "$tmp/out/bash-plain.4" \
	alpha.conf beta.rc

# --- zsh -------------------------------------------------------------------

# The zsh harness: zsh zsh-complete.zsh OUT LINE...: for each LINE, an
# interactive zsh (under zsh/zpty, compinit with the source tree first in
# $fpath) gets LINE and a key bound to a completion widget; the wrapped
# compadd appends every match to OUT.N (N counts from 1).
cat >"$tmp/zsh-complete.zsh" <<'EOF'
zmodload zsh/zpty || exit 98
out=$1
shift
export ZC_OUT
zpty zc env TERM=xterm zsh -f -i || exit 98
# No listing and no "do you wish to see all" question, which would take
# the next keys as its answer.
zpty -w zc 'PS1= PS2= RPS1=; unsetopt beep auto_list; LISTMAX=100000; bindkey -e'
zpty -w zc "fpath=(${(q)COMP_DIR} \$fpath); autoload -Uz compinit; compinit -u -D"
# Record the matches of every compadd that adds matches (-O, -A and -D
# only compute them).
zpty -w zc 'compadd() {
	if [[ " ${(j: :)@[1,(i)(-|--)]}" == *\ -[OAD]* ]]; then
		builtin compadd "$@"; return
	fi
	local -a zc_hits
	builtin compadd -A zc_hits "$@"
	(( $#zc_hits )) && print -rl -- "${(@)zc_hits}" >> $ZC_OUT
	builtin compadd "$@"
}'
zpty -w zc 'zc-complete() { _main_complete; print -r -- ZC_DONE >> $ZC_OUT; }'
zpty -w zc 'zle -C zc-complete complete-word zc-complete; bindkey "^T" zc-complete'
n=0 rc=0
for line in "$@"; do
	n=$((n + 1))
	: >| $out.$n
	zpty -w zc "ZC_OUT=${(q)out}.$n"
	zpty -w -n zc "$line"$'\x14'
	for i in {1..200}; do
		grep -qx ZC_DONE $out.$n 2>/dev/null && break
		zpty -r -t zc junk '*' >/dev/null 2>&1
		sleep 0.05
	done
	if grep -qx ZC_DONE $out.$n; then
		sed -i '/^ZC_DONE$/d; /^$/d' $out.$n
	else
		print -ru2 -- "zsh: no completion for: $line"
		rc=1
	fi
	# Clear the line (whatever completion put there) for the next one.
	zpty -w -n zc $'\x15'
done
zpty -d zc
exit $rc
EOF

# zsh runs all the lines of one check in one shell; zsh_complete answers
# from those results in the order common_checks asks.
zsh_lines=(
	'postbote --acc'
	"postbote -C $tmp/conf --account "
	"postbote -t -C$tmp/conf -v --account=h"
	"postbote -C $tmp/files/alpha.conf -C $tmp/conf --account w"
	'postbote --account '
	'postbote -C '
	"postbote -X $tmp/files/al"
	'postbote -N '
	'postbote -N success,'
	'postbote -R '
	'postbote -'
	'postbote -b'
	'postbote -i root -'
	'postbote -- -'
	'postbote -i ro'
)
zsh_complete() {
	local i
	for i in "${!zsh_lines[@]}"; do
		if [ "${zsh_lines[i]}" = "$1" ]; then
			# compadd records the inserted form; no test word is quoted.
			sort -u "$tmp/zsh/out.$((i + 1))"
			return
		fi
	done
	# A line common_checks asks that is not in zsh_lines: no candidates,
	# so the check fails.
	echo "zsh_complete: '$1' is not in zsh_lines" >&2
}
zsh_search() {
	sort -u "$tmp/zsh/$1.1"
}

if command -v zsh >/dev/null; then
	mkdir -p "$tmp/zsh"
	if zsh -n "$comp_dir/_postbote" 2>"$tmp/out/zsh-syntax"; then
		ok "zsh: completions/_postbote parses"
	else
		not_ok "zsh: completions/_postbote parses" "$(cat "$tmp/out/zsh-syntax")"
	fi
	if in_env env COMP_DIR="$comp_dir" zsh -f "$tmp/zsh-complete.zsh" \
		"$tmp/zsh/out" "${zsh_lines[@]}" 2>"$tmp/out/zsh-harness"; then
		ok "zsh: the zpty harness completed every line"
	else
		not_ok "zsh: the zpty harness completed every line" \
			"$(cat "$tmp/out/zsh-harness")"
	fi
	common_checks zsh zsh_complete
	HOME_OVERRIDE=$tmp/home2 XDG_OVERRIDE=$tmp/xdg in_env env COMP_DIR="$comp_dir" \
		zsh -f "$tmp/zsh-complete.zsh" "$tmp/zsh/xdg" 'postbote --account ' \
		2>>"$tmp/out/zsh-harness"
	HOME_OVERRIDE=$tmp/home2 in_env env COMP_DIR="$comp_dir" \
		zsh -f "$tmp/zsh-complete.zsh" "$tmp/zsh/home" 'postbote --account ' \
		2>>"$tmp/out/zsh-harness"
	exactly "zsh: without -C, \$XDG_CONFIG_HOME/postbote/config" \
		<(zsh_search xdg) xdgacct
	exactly "zsh: without -C and XDG_CONFIG_HOME, ~/.config/postbote/config" \
		<(zsh_search home) 'default homeacct'
else
	skip "zsh: completion checks" "zsh is not installed"
fi

# --- fish ------------------------------------------------------------------

# "complete -C LINE" with the source tree first in $fish_complete_path, so
# that fish autoloads completions/postbote.fish as it would an installed
# one (fish does that only for a command in $PATH: a stub stands in for
# postbote). Candidates are "word<TAB>description".
mkdir -p "$tmp/bin"
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/postbote"
chmod +x "$tmp/bin/postbote"
fish_complete() {
	# shellcheck disable=SC2016 # fish's $argv
	PATH=$tmp/bin:$PATH in_env fish --no-config -c '
		set -p fish_complete_path $argv[1]
		complete -C $argv[2]' "$comp_dir" "$1" 2>>"$tmp/out/fish-stderr" |
		cut -f1
}
fish_complete_env() {
	HOME_OVERRIDE=${HOME:-} XDG_OVERRIDE=${XDG_CONFIG_HOME:-} fish_complete "$1"
}

if command -v fish >/dev/null; then
	if fish --no-config -n "$comp_dir/postbote.fish" 2>"$tmp/out/fish-syntax"; then
		ok "fish: completions/postbote.fish parses"
	else
		not_ok "fish: completions/postbote.fish parses" \
			"$(cat "$tmp/out/fish-syntax")"
	fi
	: >"$tmp/out/fish-stderr"
	common_checks fish fish_complete
	search_checks fish fish_complete_env
	if [ -s "$tmp/out/fish-stderr" ]; then
		not_ok "fish: no errors from the completion" \
			"$(head -n 30 "$tmp/out/fish-stderr")"
	else
		ok "fish: no errors from the completion"
	fi
else
	skip "fish: completion checks" "fish is not installed"
fi

finish
