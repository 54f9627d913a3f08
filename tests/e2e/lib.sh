# shellcheck shell=bash
# lib.sh - helpers for the end-to-end tests; source it from a bash script:
#
#   . "$(dirname "$0")/lib.sh"
#   servers_start
#   ... send mail, wait_for_mail 1, compare ...
#   finish
#
# Servers:   servers_start, servers_stop
# Mailbox:   wait_for_mail N [TIMEOUT [DIR]], mail_files [DIR],
#            strip_trace_headers FILE, clear_mail
# Results:   ok NAME, not_ok NAME [MESSAGE], skip NAME [REASON], finish,
#            assert_eq [NAME] EXPECTED ACTUAL,
#            assert_contains [NAME] FILE STRING,
#            assert_not_contains [NAME] FILE STRING,
#            assert_exit CODE [NAME] CMD...
# Cleanup:   trap_add 'COMMAND' (run on exit, last added first)
#
# Output is TAP: "ok N - NAME" / "not ok N - NAME" with "# " comment lines;
# finish adds the plan and a last line "P passed, F failed". These lines go
# to the script's standard output even from a call whose output is
# redirected.
#
# Variables for tests: E2E_TMP (a private temporary directory), SERVER_DIR
# and everything in its env file once servers_start has run, top_srcdir
# and top_builddir (absolute).
#
# Environment: top_srcdir, top_builddir (set by the automake harness; both
# default to the repository holding this file), TMPDIR, KEEP_TEST_DIR=1 to
# keep the servers' directory (logs, Maildir) after the test.

_e2e_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top_srcdir=$(cd "${top_srcdir:-$_e2e_lib_dir/../..}" && pwd)
top_builddir=$(cd "${top_builddir:-$top_srcdir}" && pwd)
export top_srcdir top_builddir

# The TAP stream: the script's standard output as it was when sourced.
exec {E2E_TAP_FD}>&1

E2E_PASSED=0
E2E_FAILED=0
E2E_COUNT=0
SERVER_DIR=
_e2e_servers_running=
# The directory servers_start made; only this one is removed on exit.
_e2e_server_dir=
# A directory for the test's own temporary files, removed on exit.
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/postbote-e2e-tmp.XXXXXX") || exit 99

# --- cleanup ---------------------------------------------------------------

_e2e_exit_actions=()

# trap_add 'COMMAND': run COMMAND (with eval) when the script exits, before
# the servers stop; the command added last runs first. Tests use this
# instead of "trap ... EXIT", which would replace the library's cleanup.
trap_add() {
	_e2e_exit_actions+=("$1")
}

_e2e_cleanup() {
	local status=$? i
	# An action's error (or an unset variable in it) must not stop the
	# cleanup half-way.
	set +eu
	for ((i = ${#_e2e_exit_actions[@]} - 1; i >= 0; i--)); do
		eval "${_e2e_exit_actions[i]}"
	done
	if [ -n "$_e2e_servers_running" ]; then
		servers_stop
	fi
	if [ -n "$_e2e_server_dir" ] && [ -d "$_e2e_server_dir" ]; then
		if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then
			echo "# kept server directory $_e2e_server_dir" >&2
		else
			rm -rf "$_e2e_server_dir"
		fi
	fi
	rm -rf "$E2E_TMP"
	return "$status"
}
trap _e2e_cleanup EXIT
# A signal ends the script through the EXIT trap, which cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- servers ---------------------------------------------------------------

# servers_start: start Postfix and Dovecot in a new directory and import
# their settings (SUBMISSION_PORT, SMTPS_PORT, CA_FILE, MAILDIR, ... see
# tests/servers/postfix-dovecot.sh) into the environment. Exits 77 (skip)
# when not root, 99 (hard error) when the servers do not start.
servers_start() {
	local status=0
	# Note the directory before starting, so the trap removes it whatever
	# happens.
	_e2e_server_dir=$(mktemp -d "${TMPDIR:-/tmp}/postbote-e2e.XXXXXX") ||
		exit 99
	SERVER_DIR=$_e2e_server_dir
	_e2e_servers_running=yes
	# The daemons must not keep the TAP stream open.
	"$top_srcdir/tests/servers/postfix-dovecot.sh" start "$SERVER_DIR" \
		{E2E_TAP_FD}>&- </dev/null || status=$?
	case $status in
	0) ;;
	77)
		_e2e_servers_running=
		echo "# SKIP: the test servers need root" >&2
		exit 77
		;;
	*)
		echo "# error: the test servers did not start (status $status)" >&2
		exit 99
		;;
	esac
	set -a
	# shellcheck disable=SC1091 # written at run time
	. "$SERVER_DIR/env"
	set +a
}

# servers_stop: stop the servers now (the exit trap does it otherwise).
servers_stop() {
	if [ -n "$_e2e_servers_running" ]; then
		"$top_srcdir/tests/servers/postfix-dovecot.sh" stop "$_e2e_server_dir"
		_e2e_servers_running=
	fi
}

# --- mailbox ---------------------------------------------------------------

# wait_for_mail N [TIMEOUT [DIR]]: wait until the Maildir DIR (default
# $MAILDIR; $DSN_MAILDIR for the server's reports) holds at least N
# messages in new/, for at most TIMEOUT seconds (default 20).
wait_for_mail() {
	local want=$1 timeout=${2:-20} dir=${3:-$MAILDIR}
	local tenths=$((timeout * 10)) have
	while :; do
		have=$(find "$dir/new" -type f | wc -l)
		[ "$have" -ge "$want" ] && return 0
		[ "$tenths" -le 0 ] && break
		sleep 0.1
		tenths=$((tenths - 1))
	done
	{
		echo "# wait_for_mail: $have message(s) in $dir/new after ${timeout}s, expected $want"
		echo "# last lines of $POSTFIX_LOG:"
		tail -n 20 "$POSTFIX_LOG" | sed 's/^/#   /'
	} >&2
	return 1
}

# mail_files [DIR]: print the paths of the messages delivered to the
# Maildir DIR (default $MAILDIR), oldest first.
mail_files() {
	find "${1:-$MAILDIR}/new" -type f -printf '%T@ %p\n' | sort -k1,1n -k2 |
		cut -d' ' -f2-
}

# strip_trace_headers FILE: print the message without the header fields
# Postfix put in front of it (Return-Path, X-Original-To, Delivered-To and
# its one Received, with their continuation lines). Everything after them,
# including Received fields the client sent, is printed byte for byte.
strip_trace_headers() {
	local skip
	skip=$(awk '
		/^[ \t]/ { if (dropping) { n++; next } else exit }
		{
			name = tolower($0)
			sub(/:.*/, "", name)
			if (name == "return-path" || name == "x-original-to" ||
			    name == "delivered-to" ||
			    (name == "received" && !received++)) {
				dropping = 1
				n++
				next
			}
			exit
		}
		END { print n + 0 }' "$1")
	tail -n +"$((skip + 1))" "$1"
}

# clear_mail: empty the Maildir (and the one for server-made reports).
clear_mail() {
	local dir
	for dir in "$MAILDIR" "${DSN_MAILDIR:-}"; do
		[ -n "$dir" ] || continue
		find "$dir/new" "$dir/cur" "$dir/tmp" -type f -delete
	done
}

# --- results ---------------------------------------------------------------

_e2e_tap() {
	printf '%s\n' "$@" >&"$E2E_TAP_FD"
}

ok() {
	E2E_COUNT=$((E2E_COUNT + 1))
	E2E_PASSED=$((E2E_PASSED + 1))
	_e2e_tap "ok $E2E_COUNT - $1"
}

# not_ok NAME [MESSAGE]: MESSAGE may span lines; each becomes a comment.
not_ok() {
	E2E_COUNT=$((E2E_COUNT + 1))
	E2E_FAILED=$((E2E_FAILED + 1))
	_e2e_tap "not ok $E2E_COUNT - $1"
	if [ $# -ge 2 ]; then
		printf '%s\n' "$2" | sed 's/^/# /' >&"$E2E_TAP_FD"
	fi
}

# skip NAME [REASON]: a test that could not run here; it counts as passed.
skip() {
	E2E_COUNT=$((E2E_COUNT + 1))
	E2E_PASSED=$((E2E_PASSED + 1))
	_e2e_tap "ok $E2E_COUNT - $1 # SKIP ${2:-}"
}

# finish: print the plan and the totals; exit 1 if anything failed.
finish() {
	_e2e_tap "1..$E2E_COUNT" "$E2E_PASSED passed, $E2E_FAILED failed"
	[ "$E2E_FAILED" -eq 0 ] && exit 0
	exit 1
}

# assert_eq [NAME] EXPECTED ACTUAL
assert_eq() {
	local name
	if [ $# -ge 3 ]; then
		name=$1
		shift
	else
		name="\"$2\" is \"$1\""
	fi
	if [ "$1" = "$2" ]; then
		ok "$name"
		return 0
	fi
	not_ok "$name" "expected: $1
actual:   $2"
	return 1
}

# assert_contains [NAME] FILE STRING: FILE has STRING (grep -F) in a line.
assert_contains() {
	local name
	if [ $# -ge 3 ]; then
		name=$1
		shift
	else
		name="$1 contains \"$2\""
	fi
	if grep -qF -e "$2" "$1" 2>/dev/null; then
		ok "$name"
		return 0
	fi
	not_ok "$name" "\"$2\" not found in $1; it holds:
$(head -n 40 "$1" 2>&1)"
	return 1
}

# assert_not_contains [NAME] FILE STRING
assert_not_contains() {
	local name
	if [ $# -ge 3 ]; then
		name=$1
		shift
	else
		name="$1 does not contain \"$2\""
	fi
	if ! grep -qF -e "$2" "$1" 2>/dev/null; then
		ok "$name"
		return 0
	fi
	not_ok "$name" "\"$2\" found in $1:
$(grep -nF -e "$2" "$1" | head -n 10)"
	return 1
}

# assert_exit CODE [NAME] CMD...: run CMD and check its exit status. NAME
# is taken to be left out when the word after CODE is a command. CMD reads
# the caller's standard input; its output is kept in the files
# $ASSERT_STDOUT and $ASSERT_STDERR and then written to the caller's
# standard output and error, so "assert_exit 0 NAME cmd 2>file" also works.
assert_exit() {
	local want=$1 name status=0
	shift
	if [ $# -ge 2 ] && ! type -t -- "$1" >/dev/null; then
		name=$1
		shift
	else
		name="exit $want: $*"
	fi
	ASSERT_STDOUT=$E2E_TMP/assert.stdout
	ASSERT_STDERR=$E2E_TMP/assert.stderr
	"$@" >"$ASSERT_STDOUT" 2>"$ASSERT_STDERR" || status=$?
	cat "$ASSERT_STDOUT"
	cat "$ASSERT_STDERR" >&2
	if [ "$status" -eq "$want" ]; then
		ok "$name"
		return 0
	fi
	not_ok "$name" "$* exited with $status, expected $want
stdout: $(head -n 20 "$ASSERT_STDOUT")
stderr: $(head -n 20 "$ASSERT_STDERR")"
	return 1
}
