#!/bin/sh
# kdc.sh start DIR | stop DIR
#
# Runs a private MIT Kerberos KDC for realm EXAMPLE.ORG on 127.0.0.1, for
# the GSSAPI end-to-end tests. Its database, configuration, keytabs and log
# all live under DIR; /etc/krb5.conf and /etc/krb5kdc are never read or
# written (every Kerberos program here runs with KRB5_CONFIG and
# KRB5_KDC_PROFILE pointing into DIR). Several instances (different DIRs)
# can run at the same time. Root is not needed.
#
# "start" prints nothing on success and writes DIR/kdc.env, a file for "."
# (plain assignments; export what a program must see):
#   KRB5_CONFIG      DIR/krb5.conf, the client configuration: default realm,
#                    the KDC at 127.0.0.1:KDC_PORT, no DNS, rdns = false and
#                    dns_canonicalize_hostname = false (so "localhost" stays
#                    "localhost"), the ticket cache DIR/ccache
#   KRB5CCNAME       FILE:DIR/ccache (empty until someone runs kinit)
#   KDC_PORT         UDP and TCP port of the KDC on 127.0.0.1
#   KRB5_REALM       EXAMPLE.ORG
#   KRB5_USER        tester (principal tester@EXAMPLE.ORG)
#   KRB5_PASSWORD    its password (kinit reads it from standard input)
#   KRB5_USER_KEYTAB DIR/tester.keytab, for "kinit -k -t" without a password
#   KRB5_SERVICE     smtp/localhost@EXAMPLE.ORG, the mail server's principal
#   KEYTAB           DIR/smtp.keytab, the keys of KRB5_SERVICE
#   KDC_DIR, KDC_LOG
# "start" on an instance that is already running leaves it as it is. A new
# start creates a fresh database, so keys and keytabs change.
# "stop" ends the KDC and removes DIR/kdc.env; the rest of DIR stays.
#
# Needs krb5-kdc (krb5kdc, kdb5_util, kadmin.local), krb5-user (kinit) and
# python3 (port choice; /usr/bin/python3 unless PYTHON3 is set).

set -eu

prog=${0##*/}

REALM=EXAMPLE.ORG
USER=tester
PASSWORD=tester-krb5-password
SERVICE=smtp/localhost
# Throwaway: protects nothing but this test database.
MASTER_PASSWORD=postbote-test-master-key
START_TIMEOUT=5
STOP_TIMEOUT=5
# As in postfix-dovecot.sh: below the Linux ephemeral port range.
PORT_MIN=20000
PORT_MAX=32000

usage() {
	echo "usage: $prog start DIR | stop DIR" >&2
	exit 64
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

layout() {
	dir=$1
	db_dir=$dir/db
	kdc_conf=$dir/kdc.conf
	krb5_conf=$dir/krb5.conf
	pid_file=$dir/kdc.pid
	kdc_log=$dir/kdc.log
	ccache=$dir/ccache
	service_keytab=$dir/smtp.keytab
	user_keytab=$dir/tester.keytab
	env_file=$dir/kdc.env
}

# find_tool NAME: the path of a Kerberos program (the admin tools are in
# /usr/sbin, which a non-root PATH may lack).
find_tool() {
	for candidate in "$(command -v "$1" 2>/dev/null || :)" "/usr/sbin/$1" "/usr/bin/$1"; do
		if [ -n "$candidate" ] && [ -x "$candidate" ]; then
			echo "$candidate"
			return 0
		fi
	done
	die "$1 not found (needs krb5-kdc and krb5-user)"
}

# kdc_pid: the PID of this instance's KDC if it is alive, else nothing.
kdc_pid() {
	[ -f "$pid_file" ] || return 0
	pid=$(awk 'NR == 1 { print $1 }' "$pid_file")
	case $pid in
	'' | *[!0-9]*) return 0 ;;
	esac
	# Only a krb5kdc whose command line names this DIR's pid file.
	[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$krb5kdc" ] || return 0
	tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$pid_file" || return 0
	state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
	case $state in
	Z | X | '') return 0 ;;
	esac
	echo "$pid"
}

do_stop() {
	pid=$(kdc_pid)
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || :
		tenths=$((STOP_TIMEOUT * 10))
		while [ -n "$(kdc_pid)" ] && [ "$tenths" -gt 0 ]; do
			sleep 0.1
			tenths=$((tenths - 1))
		done
		if [ -n "$(kdc_pid)" ]; then
			kill -KILL "$pid" 2>/dev/null || :
			sleep 0.2
			[ -z "$(kdc_pid)" ] || die "KDC $pid survived SIGKILL"
		fi
	fi
	rm -f "$pid_file" "$env_file"
}

# pick_port: a port free for both UDP and TCP on 127.0.0.1.
pick_port() {
	"$python" - "$PORT_MIN" "$PORT_MAX" <<'EOF'
import random
import socket
import sys

low, high = int(sys.argv[1]), int(sys.argv[2])
rng = random.SystemRandom()
for _ in range(2000):
    port = rng.randrange(low, high)
    socks = []
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            sock = socket.socket(socket.AF_INET, kind)
            socks.append(sock)
            sock.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for sock in socks:
            sock.close()
    print(port)
    sys.exit(0)
sys.exit("no free port between %d and %d" % (low, high))
EOF
}

write_configs() {
	cat >"$kdc_conf" <<EOF
# KDC profile of the postbote test KDC (KRB5_KDC_PROFILE).
[kdcdefaults]
    kdc_listen = 127.0.0.1:$port
    kdc_tcp_listen = 127.0.0.1:$port

[realms]
    $REALM = {
        database_name = $db_dir/principal
        key_stash_file = $db_dir/stash
        acl_file = $dir/kadm5.acl
        kdc_listen = 127.0.0.1:$port
        kdc_tcp_listen = 127.0.0.1:$port
        max_life = 10h 0m 0s
        max_renewable_life = 1d 0h 0m 0s
        default_principal_flags = +preauth
    }

[logging]
    kdc = FILE:$kdc_log
    admin_server = FILE:$dir/kadmin.log
    default = FILE:$kdc_log
EOF
	cat >"$krb5_conf" <<EOF
# Client configuration for the postbote test realm (KRB5_CONFIG).
[libdefaults]
    default_realm = $REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    default_ccache_name = FILE:$ccache
    forwardable = false
    udp_preference_limit = 1

[realms]
    $REALM = {
        kdc = 127.0.0.1:$port
    }

[domain_realm]
    localhost = $REALM
    .example.org = $REALM
    example.org = $REALM
EOF
	: >"$dir/kadm5.acl"
}

# make_database: a new database with the user and the service principal.
make_database() {
	rm -rf "$db_dir"
	rm -f "$service_keytab" "$user_keytab" "$ccache"
	mkdir -p "$db_dir"
	chmod 700 "$db_dir"
	"$kdb5_util" -r "$REALM" create -s -P "$MASTER_PASSWORD" \
		</dev/null >>"$dir/setup.log" 2>&1 ||
		die "kdb5_util create failed (see $dir/setup.log)"
	for query in \
		"addprinc -pw $PASSWORD $USER" \
		"addprinc -randkey $SERVICE" \
		"ktadd -k $service_keytab -norandkey $SERVICE" \
		"ktadd -k $user_keytab -norandkey $USER"; do
		"$kadmin_local" -r "$REALM" -q "$query" \
			</dev/null >>"$dir/setup.log" 2>&1 ||
			die "kadmin.local: $query failed (see $dir/setup.log)"
	done
	if [ ! -s "$service_keytab" ] || [ ! -s "$user_keytab" ]; then
		die "keytabs were not written (see $dir/setup.log)"
	fi
	chmod 600 "$service_keytab" "$user_keytab"
}

# start_kdc: start krb5kdc (it binds its sockets before it detaches, so a
# taken port shows in its exit status); choose a new port when it was taken
# after pick_port found it free.
start_kdc() {
	attempt=1
	while :; do
		lines=0
		[ -f "$kdc_log" ] && lines=$(wc -l <"$kdc_log")
		if "$krb5kdc" -r "$REALM" -P "$pid_file" </dev/null >>"$dir/setup.log" 2>&1; then
			break
		fi
		if [ "$attempt" -lt 5 ] && tail -n +"$((lines + 1))" "$kdc_log" \
			2>/dev/null | grep -qi 'address already in use'; then
			attempt=$((attempt + 1))
			port=$(pick_port) || die "cannot pick a port"
			write_configs
			continue
		fi
		tail -n 15 "$kdc_log" >&2 2>/dev/null || :
		die "krb5kdc did not start"
	done
}

# probe: wait until the KDC hands out a ticket (into a memory cache).
probe() {
	tenths=$((START_TIMEOUT * 10))
	while :; do
		if [ -n "$(kdc_pid)" ] && "$kinit" -c MEMORY:probe -k -t "$user_keytab" \
			"$USER@$REALM" </dev/null >>"$dir/setup.log" 2>&1; then
			return 0
		fi
		[ "$tenths" -gt 0 ] || break
		sleep 0.1
		tenths=$((tenths - 1))
	done
	tail -n 15 "$kdc_log" >&2 2>/dev/null || :
	do_stop
	die "the KDC did not answer within $START_TIMEOUT s"
}

# quote VALUE: VALUE as a single-quoted shell word.
quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

write_env() {
	{
		echo "# written by $prog start; for \". $env_file\""
		echo "KDC_DIR=$(quote "$dir")"
		echo "KDC_PORT=$port"
		echo "KDC_LOG=$(quote "$kdc_log")"
		echo "KRB5_CONFIG=$(quote "$krb5_conf")"
		echo "KRB5CCNAME=$(quote "FILE:$ccache")"
		echo "KRB5_REALM=$REALM"
		echo "KRB5_USER=$USER"
		echo "KRB5_PASSWORD=$(quote "$PASSWORD")"
		echo "KRB5_USER_KEYTAB=$(quote "$user_keytab")"
		echo "KRB5_SERVICE=$SERVICE@$REALM"
		echo "KEYTAB=$(quote "$service_keytab")"
	} >"$env_file.tmp"
	mv -f "$env_file.tmp" "$env_file"
}

do_start() {
	python=${PYTHON3:-python3}
	if [ -z "${PYTHON3:-}" ] && [ -x /usr/bin/python3 ]; then
		python=/usr/bin/python3
	fi
	command -v "$python" >/dev/null 2>&1 || die "$python not found"
	kdb5_util=$(find_tool kdb5_util)
	kadmin_local=$(find_tool kadmin.local)
	kinit=$(find_tool kinit)
	case $dir in
	*[!A-Za-z0-9/._+-]*)
		die "$dir: only letters, digits and / . _ + - are allowed in DIR" ;;
	esac
	if [ -n "$(kdc_pid)" ] && [ -f "$env_file" ]; then
		return 0 # already running
	fi
	do_stop
	rm -f "$dir/setup.log" "$kdc_log" "$dir/kadmin.log"
	port=$(pick_port) || die "cannot pick a port"
	write_configs
	make_database
	start_kdc
	probe
	write_env
}

# --- main ------------------------------------------------------------------

[ $# -eq 2 ] || usage
case $1 in
start | stop) ;;
*) usage ;;
esac
if [ "$1" = stop ] && [ ! -d "$2" ]; then
	exit 0
fi
mkdir -p "$2" || die "cannot create $2"
layout "$(cd "$2" && pwd -P)"
umask 022

# Never the system's configuration, whatever the caller's environment.
KRB5_CONFIG=$krb5_conf
KRB5_KDC_PROFILE=$kdc_conf
KRB5CCNAME=FILE:$ccache
export KRB5_CONFIG KRB5_KDC_PROFILE KRB5CCNAME
unset KRB5_KTNAME KRB5_CLIENT_KTNAME KRB5_TRACE 2>/dev/null || :

krb5kdc=$(find_tool krb5kdc)
krb5kdc=$(readlink -f "$krb5kdc")

case $1 in
start) do_start ;;
stop) do_stop ;;
esac
