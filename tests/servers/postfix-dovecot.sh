#!/bin/sh
# postfix-dovecot.sh start DIR | stop DIR
#
# Runs a private Postfix and a private Dovecot (authentication service only)
# on loopback for the end-to-end tests. Everything they write lives under
# DIR; the system instances and /etc/postfix, /etc/dovecot are left alone.
# Several instances (different DIRs) can run at the same time.
#
# "start" prints nothing on success and writes DIR/env, a file for "." with
# the ports, credentials and paths (listed in write_env below). "stop" ends
# every process of the instance. Both must run as root (Postfix's master
# and Dovecot's master insist on it); otherwise the exit status is 77, the
# automake code for a skipped test.
#
# Services, all on 127.0.0.1 (and ::1 where the host has it), ports picked
# at run time:
#   SUBMISSION_PORT  STARTTLS required before AUTH and MAIL; relaying only
#                    after AUTH (SASL via Dovecot); without AUTH only
#                    recipients in the local domain "localhost" are taken
#   SMTPS_PORT       the same with implicit TLS
#   WRONGNAME_PORT   like submission, certificate only for "wrong.example"
#   UNTRUSTED_PORT   like submission, certificate from an unknown CA
#   NOTLS_PORT       plain SMTP, no STARTTLS, no AUTH; relays for loopback
#                    clients (a "relay on localhost")
# Every accepted message, whatever the recipient, is delivered by virtual(8)
# into DIR/Maildir. Reports Postfix generates itself (bounces, DSN success
# and delay notices) go to DIR/Maildir-dsn instead, so they never disturb a
# test that counts messages. Nothing is relayed off the machine.
#
# Kerberos: with KDC_ENV=FILE at start, FILE being the kdc.env that
# "kdc.sh start" wrote, Dovecot also offers GSSAPI (needs dovecot-gssapi)
# on SUBMISSION_PORT and SMTPS_PORT. It accepts the service principal
# smtp/localhost of that KDC (from a copy of its keytab), so a client must
# ask for a ticket to "smtp@localhost": connect by the name "localhost".
# The principal tester@EXAMPLE.ORG logs in as tester@example.org
# (auth_username_format lowercases it), the same user as SMTP_USER.
# DIR/env then also holds GSSAPI=1 and KDC_ENV. Without KDC_ENV (or with
# it empty) none of this is set up.
#
# Needs postfix, dovecot-core, gnutls-bin (certtool), python3 and
# util-linux (runuser). python3 is /usr/bin/python3 when it exists (it
# starts faster than a pyenv shim); PYTHON3=/path/to/python3 overrides.

set -eu

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)

# How long start waits for everything to come up, in seconds.
START_TIMEOUT=20
# How long stop waits after SIGTERM before it uses SIGKILL, in seconds.
STOP_TIMEOUT=10
# Ports are chosen below the Linux ephemeral range (32768-60999) so an
# outgoing connection cannot take one between choosing and binding it.
PORT_MIN=20000
PORT_MAX=32000
# sun_path holds 108 bytes; Dovecot's longest socket name under base_dir
# is about 40, so DIR must stay short.
DIR_MAX=56

USER1=tester@example.org
PASSWORD1=tester-password-1
USER2=second@example.org
PASSWORD2='second pass 2'

usage() {
	echo "usage: $prog start DIR | stop DIR" >&2
	exit 64
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

# layout DIR: set the path variables of one instance.
layout() {
	dir=$1
	cert_dir=$dir/certs
	log_dir=$dir/log
	maildir=$dir/Maildir
	dsn_maildir=$dir/Maildir-dsn
	pf_etc=$dir/postfix/etc
	pf_queue=$dir/postfix/queue
	pf_data=$dir/postfix/data
	pf_log=$log_dir/postfix.log
	dc_dir=$dir/dovecot
	dc_conf=$dc_dir/dovecot.conf
	dc_run=$dc_dir/run
	dc_socket=$dc_dir/auth-postfix
	dc_log=$log_dir/dovecot.log
	dc_krb5_conf=$dc_dir/krb5.conf
	dc_keytab=$dc_dir/krb5.keytab
	dc_rcache=$dc_dir/rcache
	dc_krb5_trace=$log_dir/krb5-dovecot.log
	sessions_file=$dir/sessions
}

# --- processes -------------------------------------------------------------

# The processes of an instance are found in two ways: by session (both
# masters call setsid(), and start records their session ids) and by
# working directory (every Postfix and Dovecot process of an instance works
# in a directory below DIR). Either way only processes that run a Postfix
# or Dovecot program count. A process that has exited but is not yet
# reaped (a zombie) counts as gone: a slow init in a container may take
# seconds to reap the masters, which daemonized and so became its children.

# proc_table [PID...]: print "PID STATE SESSION" for the given processes,
# or for all.
proc_table() {
	if [ $# -eq 0 ]; then
		set -- /proc/[0-9]*/stat
	else
		# shellcheck disable=SC2046 # a list of paths without blanks
		set -- $(printf '/proc/%s/stat ' "$@")
	fi
	# Field 2 of stat, "(comm)", may hold blanks and parentheses; the
	# greedy match ends at the last ") ", after which all fields are plain.
	cat "$@" 2>/dev/null | sed 's/ (.*) / comm /' | awk '{ print $1, $3, $6 }'
}

# live PID...: print those of the PIDs that are alive (not zombies).
live() {
	[ $# -gt 0 ] || return 0
	proc_table "$@" | awk '$2 != "Z" && $2 != "X" { print $1 }'
}

# ours PID...: print those of the PIDs that run a Postfix or Dovecot program.
ours() {
	[ $# -gt 0 ] || return 0
	# shellcheck disable=SC2046 # a list of paths without blanks
	find $(printf '/proc/%s/exe ' "$@") -maxdepth 0 \( \
		-lname '/usr/lib/postfix/*' -o -lname /usr/sbin/postfix -o \
		-lname /usr/sbin/dovecot -o -lname '/usr/lib/dovecot/*' \) \
		2>/dev/null | sed 's|^/proc/||; s|/exe$||'
}

# pid_file_pid FILE: the first number in a pid file, if any.
pid_file_pid() {
	[ -f "$1" ] || return 0
	awk 'NR == 1 { print $1 }' "$1"
}

# instance_pids: print the PIDs of the instance's live processes.
instance_pids() {
	sids=
	[ -f "$sessions_file" ] && sids=$(cat "$sessions_file")
	sids=" $sids $(pid_file_pid "$pf_queue/pid/master.pid") $(pid_file_pid "$dc_run/master.pid") "
	# shellcheck disable=SC2046 # lists of PIDs
	ours $(live $({
		proc_table | awk -v sids="$sids" 'index(sids, " " $3 " ") { print $1 }'
		find /proc/[0-9]*/cwd -maxdepth 0 \( -lname "$dir" -o -lname "$dir/*" \) \
			2>/dev/null | sed 's|^/proc/||; s|/cwd$||'
	} | sort -u))
}

# record_session PIDFILE: note the session of the master in PIDFILE.
record_session() {
	pid=$(pid_file_pid "$1")
	[ -n "$pid" ] || return 0
	proc_table "$pid" | awk '{ print $3 }' >>"$sessions_file"
}

# wait_gone SECONDS PID...: wait until none of the PIDs is alive.
wait_gone() {
	tenths=$(($1 * 10))
	shift
	while [ -n "$(live "$@")" ]; do
		[ "$tenths" -le 0 ] && return 1
		sleep 0.1
		tenths=$((tenths - 1))
	done
	return 0
}

# do_stop: send SIGTERM to all processes of the instance at once. This is
# much faster than letting each master shut its children down (Dovecot's
# takes seconds), and no less clean for a test server: "postfix stop" ends
# in the same way, with SIGKILL. What is left after that gets SIGKILL.
do_stop() {
	pids=$(instance_pids | tr "\n" " ")
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086 # a list of PIDs
		kill -TERM $pids 2>/dev/null || true
		# shellcheck disable=SC2086
		wait_gone "$STOP_TIMEOUT" $pids ||
			echo "$prog: processes ignored SIGTERM" >&2
	fi
	# A master may have started a child just before it got the signal.
	pids=$(instance_pids | tr "\n" " ")
	if [ -n "$pids" ]; then
		echo "$prog: killing left-over processes: $pids" >&2
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		# shellcheck disable=SC2086
		wait_gone 2 $pids || {
			echo "$prog: processes survived SIGKILL: $pids" >&2
			exit 1
		}
	fi
	rm -f "$sessions_file"
}

# --- configuration ---------------------------------------------------------

# pick_ports COUNT: print "yes" or "no" (is ::1 usable) and COUNT distinct
# ports that are free on 127.0.0.1 (and ::1 when usable).
pick_ports() {
	"$python" - "$1" "$PORT_MIN" "$PORT_MAX" <<'EOF'
import random
import socket
import sys

count, low, high = (int(arg) for arg in sys.argv[1:4])

def ipv6_loopback_usable():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False

ipv6 = ipv6_loopback_usable()
families = [(socket.AF_INET, "127.0.0.1")]
if ipv6:
    families.append((socket.AF_INET6, "::1"))

# Keep every chosen port bound until all are chosen, so they differ.
held, ports = [], []
rng = random.SystemRandom()
for _ in range(2000):
    if len(ports) == count:
        break
    port = rng.randrange(low, high)
    if port in ports:
        continue
    socks = []
    try:
        for family, address in families:
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port))
    except OSError:
        for sock in socks:
            sock.close()
        continue
    held.extend(socks)
    ports.append(port)
if len(ports) < count:
    sys.exit("no free ports between %d and %d" % (low, high))
print("yes" if ipv6 else "no", *ports)
EOF
}

write_dovecot_conf() {
	# The instance name shows in process titles and keeps instances apart.
	instance=postbote-$(basename "$dir")
	cat >"$dc_conf" <<EOF
# Private Dovecot for the postbote tests: authentication service only.
instance_name = $instance
base_dir = $dc_run
state_dir = $dc_dir/state
protocols =
listen = 127.0.0.1
log_path = $dc_log
ssl = no
shutdown_clients = yes

# Postfix only offers AUTH inside TLS (smtpd_tls_auth_only), so Dovecot
# need not check that itself.
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256$gssapi_mech
# A failed AUTH is answered at once where Dovecot 2.3 allows it: passdb
# entries carry "nodelay" (see below); other failures (unknown user, the
# CRAM-MD5 and SCRAM lookups) still wait up to 0.5 s for Dovecot's timer.
auth_failure_delay = 0
auth_cache_size = 0
auth_verbose = yes
auth_verbose_passwords = no

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dc_dir/users
}
userdb {
  driver = static
  args = uid=$virtual_uid gid=$virtual_gid home=$dc_dir/home
}

# Without its socket, the auth process gives up the per-IP penalty (2 s
# growing to 15 s before every AUTH after a failure), which would slow
# down every test that follows one with a wrong password.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

service auth {
  unix_listener $dc_socket {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
	# {PLAIN} keeps the cleartext, which every mechanism above can use. The
	# last field holds extra passdb fields.
	umask 077
	{
		echo "$USER1:{PLAIN}$PASSWORD1::::::nodelay"
		echo "$USER2:{PLAIN}$PASSWORD2::::::nodelay"
	} >"$dc_dir/users"
	umask 022
	chown root:dovecot "$dc_dir/users"
	chmod 640 "$dc_dir/users"
	[ "$gssapi" = 1 ] && write_dovecot_gssapi
	return 0
}

# write_dovecot_gssapi: the GSSAPI part of the Dovecot configuration. The
# auth process runs as user dovecot and sees only the environment that
# import_environment lists; it reads its own copies of the KDC's client
# configuration and of the service keytab.
write_dovecot_gssapi() {
	cat >>"$dc_conf" <<EOF

# GSSAPI (Kerberos 5) with the test KDC of $kdc_env.
# The acceptor name is smtp@localhost (Postfix passes the service "smtp"),
# i.e. smtp/localhost@$kdc_realm from the keytab. The client's principal
# is the user name: tester@$kdc_realm becomes tester@example.org through
# auth_username_format (%Lu), a user the passdb above knows.
auth_gssapi_hostname = localhost
auth_krb5_keytab = $dc_keytab
import_environment = \$import_environment KRB5_CONFIG=$dc_krb5_conf KRB5RCACHEDIR=$dc_rcache KRB5_TRACE=$dc_krb5_trace
EOF
	cp "$kdc_krb5_config" "$dc_krb5_conf"
	chmod 644 "$dc_krb5_conf"
	cp "$kdc_keytab" "$dc_keytab"
	chown root:dovecot "$dc_keytab"
	chmod 640 "$dc_keytab"
	mkdir -p "$dc_rcache"
	chown dovecot "$dc_rcache"
	chmod 700 "$dc_rcache"
	: >"$dc_krb5_trace"
	chown dovecot "$dc_krb5_trace"
}

# read_kdc_env: with KDC_ENV set, take the KDC's client configuration and
# service keytab from it (gssapi=1); without, gssapi=0.
read_kdc_env() {
	gssapi=0
	gssapi_mech=
	kdc_env=${KDC_ENV:-}
	[ -n "$kdc_env" ] || return 0
	[ -f "$kdc_env" ] || die "KDC_ENV: $kdc_env not found (run kdc.sh start first)"
	kdc_env=$(cd "$(dirname "$kdc_env")" && pwd -P)/$(basename "$kdc_env")
	# shellcheck disable=SC1090 # written by kdc.sh
	kdc_krb5_config=$(. "$kdc_env" && printf '%s' "${KRB5_CONFIG:-}")
	# shellcheck disable=SC1090
	kdc_keytab=$(. "$kdc_env" && printf '%s' "${KEYTAB:-}")
	# shellcheck disable=SC1090
	kdc_realm=$(. "$kdc_env" && printf '%s' "${KRB5_REALM:-}")
	if [ ! -f "$kdc_krb5_config" ] || [ ! -f "$kdc_keytab" ] || [ -z "$kdc_realm" ]; then
		die "$kdc_env lacks KRB5_CONFIG, KEYTAB or KRB5_REALM, or their files are missing"
	fi
	[ -f /usr/lib/dovecot/modules/auth/libmech_gssapi.so ] ||
		die "KDC_ENV is set but Dovecot has no GSSAPI (install dovecot-gssapi)"
	gssapi=1
	gssapi_mech=" gssapi"
}

write_postfix_main_cf() {
	if [ "$ipv6" = yes ]; then
		inet_protocols='ipv4, ipv6'
		inet_interfaces='127.0.0.1, [::1]'
		mynetworks='127.0.0.0/8, [::1]/128'
	else
		inet_protocols=ipv4
		inet_interfaces=127.0.0.1
		mynetworks=127.0.0.0/8
	fi
	cat >"$pf_etc/main.cf" <<EOF
# Private Postfix for the postbote tests.
compatibility_level = 3.6
queue_directory = $pf_queue
data_directory = $pf_data
meta_directory = $pf_etc
mail_owner = postfix
setgid_group = postdrop
syslog_name = postbote-postfix
maillog_file = $pf_log
maillog_file_prefixes = $log_dir

myhostname = localhost
mydomain = localhost
myorigin = localhost
mydestination = localhost
inet_protocols = $inet_protocols
inet_interfaces = $inet_interfaces
mynetworks = $mynetworks
smtpd_banner = \$myhostname ESMTP postbote test server
smtpd_peername_lookup = no
biff = no

# Deliver everything into one Maildir, whatever the domain: no mail leaves.
local_transport = virtual
virtual_transport = virtual
relay_transport = virtual
default_transport = virtual
local_recipient_maps =
alias_maps =
alias_database =
# No domain is a virtual mailbox domain (the default, virtual_mailbox_maps,
# would make every domain one with a static map, and so open the relay):
# mail for other domains reaches virtual(8) as default_transport.
virtual_mailbox_domains =
virtual_mailbox_base = $dir
virtual_mailbox_maps = static:Maildir/
virtual_uid_maps = static:$virtual_uid
virtual_gid_maps = static:$virtual_gid

# Keep the message exactly as the client sent it.
local_header_rewrite_clients =
always_add_missing_headers = no

# Retry quickly, so a delivery problem shows in the log at once.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s

smtputf8_enable = yes

# Be strict with clients, loopback ones included: a message with a bare LF
# is refused at the end of DATA ("550 5.5.2 ... bare <LF> received"), a
# command with one ends the session, and so does a command pipelined where
# RFC 2920 forbids it.
smtpd_forbid_bare_newline = reject
smtpd_forbid_bare_newline_exclusions =
smtpd_forbid_unauth_pipelining = yes

smtpd_tls_chain_files = $cert_dir/server-key.pem, $cert_dir/server.pem
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes

smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $dc_socket
smtpd_sasl_authenticated_header = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
EOF
}

write_postfix_master_cf() {
	cat >"$pf_etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
$submission_port inet n - n - - smtpd
  -o syslog_name=postbote-postfix/submission
$smtps_port inet n - n - - smtpd
  -o syslog_name=postbote-postfix/smtps
  -o smtpd_tls_wrappermode=yes
$wrongname_port inet n - n - - smtpd
  -o syslog_name=postbote-postfix/wrongname
  -o smtpd_tls_chain_files=$cert_dir/wrongname-key.pem,$cert_dir/wrongname.pem
$untrusted_port inet n - n - - smtpd
  -o syslog_name=postbote-postfix/untrusted
  -o smtpd_tls_chain_files=$cert_dir/untrusted-key.pem,$cert_dir/untrusted.pem
$notls_port inet n - n - - smtpd
  -o syslog_name=postbote-postfix/notls
  -o smtpd_tls_security_level=none
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=permit_mynetworks,reject_unauth_destination
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
  -o cleanup_service_name=dsncleanup
  -o internal_mail_filter_classes=bounce
defer     unix  -       -       n       -       0       bounce
  -o cleanup_service_name=dsncleanup
  -o internal_mail_filter_classes=bounce
trace     unix  -       -       n       -       0       bounce
  -o cleanup_service_name=dsncleanup
  -o internal_mail_filter_classes=bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
# Reports from bounce(8) pass through their own cleanup, whose only header
# check routes them to a virtual(8) that writes to Maildir-dsn. (cleanup
# ignores content_filter; and without internal_mail_filter_classes=bounce
# it would skip header checks for such reports.)
dsncleanup unix n       -       n       -       0       cleanup
  -o syslog_name=postbote-postfix/dsn
  -o header_checks=regexp:$pf_etc/dsn_header_checks
  -o mime_header_checks=
  -o nested_header_checks=
dsnvirtual unix -       n       n       -       -       virtual
  -o virtual_mailbox_maps=static:Maildir-dsn/
EOF
	echo '/^Subject:/ FILTER dsnvirtual:localhost' >"$pf_etc/dsn_header_checks"
}

# make_tree: create the directories of a new instance.
make_tree() {
	mkdir -p "$cert_dir" "$log_dir" "$pf_etc" "$pf_queue" "$pf_data" \
		"$dc_dir/state" "$dc_dir/home"
	# The Postfix and Dovecot users must reach their files below DIR.
	chmod 755 "$dir" "$dir/postfix" "$dc_dir" "$log_dir"
	chown postfix "$pf_data"
	chmod 700 "$pf_data"
	for md in "$maildir" "$dsn_maildir"; do
		mkdir -p "$md/new" "$md/cur" "$md/tmp"
		chown -R "$virtual_uid:$virtual_gid" "$md"
	done
	# meta_directory: no dynamic maps are needed, and post-install must
	# only create the queue of this instance.
	mkdir -p "$pf_etc/dynamicmaps.cf.d" "$pf_etc/postfix-files.d"
	echo "# no dynamically loaded maps" >"$pf_etc/dynamicmaps.cf"
	# shellcheck disable=SC2016 # a literal "$" in the pattern
	grep -E '^\$(queue|data)_directory[/:]' /etc/postfix/postfix-files \
		>"$pf_etc/postfix-files" ||
		die "cannot read /etc/postfix/postfix-files (is postfix installed?)"
	make_queue
}

# make_queue: create the queue directories as postfix-files describes them.
# "postfix start" would do this too, but its checks take a second or more;
# with the queue in place, the quick-start file lets it skip them.
make_queue() {
	# shellcheck disable=SC2016 # literal "$" in the patterns
	grep -E '^\$queue_directory/[a-z]+:d:' "$pf_etc/postfix-files" |
		while IFS=: read -r path _ owner group mode _; do
			path=$pf_queue/${path#\$queue_directory/}
			case $owner in
			'$mail_owner') owner=postfix ;;
			esac
			case $group in
			'$setgid_group') owner=$owner:postdrop ;;
			esac
			mkdir -p "$path"
			chown "$owner" "$path"
			chmod "$mode" "$path"
		done
}

check_reachable() {
	for user in nobody postfix; do
		runuser -u "$user" -- test -x "$dir/." 2>/dev/null ||
			die "user $user cannot enter $dir; use a directory whose parents are world-searchable (e.g. under /tmp)"
	done
}

# --- start -----------------------------------------------------------------

# probe: wait until every service answers like it should; prints the
# reason and fails when that takes longer than the remaining time.
probe() {
	"$python" - "$1" "$cert_dir/ca.pem" "$USER1" "$PASSWORD1" "$ipv6" \
		"$submission_port" "$smtps_port" "$wrongname_port" \
		"$untrusted_port" "$notls_port" "$gssapi" <<'EOF'
import smtplib
import ssl
import sys
import time

deadline = time.monotonic() + float(sys.argv[1])
cafile, user, password, ipv6 = sys.argv[2:6]
submission, smtps, wrongname, untrusted, notls = (int(p) for p in sys.argv[6:11])
gssapi = sys.argv[11] == "1"

verified = ssl.create_default_context(cafile=cafile)
unverified = ssl.create_default_context()
unverified.check_hostname = False
unverified.verify_mode = ssl.CERT_NONE

def starttls(host, port, context):
    smtp = smtplib.SMTP(host, port, local_hostname="localhost", timeout=5)
    smtp.starttls(context=context)
    smtp.ehlo()
    return smtp

def implicit_tls(host, port, context):
    smtp = smtplib.SMTP_SSL(host, port, local_hostname="localhost",
                            timeout=5, context=context)
    smtp.ehlo()
    return smtp

def plain(host, port, context):
    smtp = smtplib.SMTP(host, port, local_hostname="localhost", timeout=5)
    smtp.ehlo()
    if smtp.has_extn("starttls") or smtp.has_extn("auth"):
        raise RuntimeError("offers STARTTLS or AUTH")
    return smtp

# (name, connect, host, port, TLS context, log in?)
checks = [
    ("submission", starttls, "127.0.0.1", submission, verified, True),
    ("smtps", implicit_tls, "127.0.0.1", smtps, verified, True),
    ("wrongname", starttls, "127.0.0.1", wrongname, unverified, False),
    ("untrusted", starttls, "127.0.0.1", untrusted, unverified, False),
    ("notls", plain, "127.0.0.1", notls, None, False),
]
if ipv6 == "yes":
    checks.append(("submission on ::1", starttls, "::1", submission,
                   verified, True))

pending = checks
while True:
    failed = []
    for check in pending:
        name, connect, host, port, context, login = check
        try:
            smtp = connect(host, port, context)
            try:
                if context is not None and not smtp.has_extn("auth"):
                    raise RuntimeError("no AUTH offered (Dovecot not reachable?)")
                if login:
                    if gssapi and "GSSAPI" not in smtp.esmtp_features["auth"].upper().split():
                        raise RuntimeError("GSSAPI not offered")
                    smtp.login(user, password)
            finally:
                smtp.close()
        except (OSError, smtplib.SMTPException, RuntimeError) as error:
            failed.append((check, error))
    if not failed:
        sys.exit(0)
    if time.monotonic() >= deadline:
        for (name, _, host, port, _, _), error in failed:
            print("%s (%s port %d): %s" % (name, host, port, error),
                  file=sys.stderr)
        sys.exit(1)
    pending = [check for check, _ in failed]
    time.sleep(0.1)
EOF
}

# fail_start MESSAGE: report, show the logs, stop what was started.
fail_start() {
	echo "$prog: $1" >&2
	for log in "$dir/start.log" "$pf_log" "$dc_log"; do
		[ -s "$log" ] || continue
		echo "--- last lines of $log:" >&2
		tail -n 15 "$log" >&2
	done
	do_stop
	exit 1
}

seconds_left() {
	echo $((deadline - $(date +%s)))
}

start_dovecot() {
	dovecot -c "$dc_conf" </dev/null >>"$dir/start.log" 2>&1 ||
		fail_start "dovecot did not start"
	while [ ! -S "$dc_socket" ] || [ ! -s "$dc_run/master.pid" ]; do
		[ "$(seconds_left)" -gt 0 ] ||
			fail_start "dovecot auth socket $dc_socket did not appear"
		sleep 0.1
	done
	record_session "$dc_run/master.pid"
}

# start_postfix: start master, choosing new ports when one was taken
# after pick_ports found it free (another instance starting at once).
start_postfix() {
	attempt=1
	while :; do
		write_postfix_main_cf
		write_postfix_master_cf
		# Postfix re-reads a main.cf changed within the last second or
		# two, dozing 0.3 s each time, in case an editor is still at work.
		touch -d '1 minute ago' "$pf_etc/main.cf" "$pf_etc/master.cf"
		log_lines=0
		[ -f "$pf_log" ] && log_lines=$(wc -l <"$pf_log")
		touch "$pf_queue/quick-start"
		if postfix -c "$pf_etc" start </dev/null >>"$dir/start.log" 2>&1; then
			break
		fi
		if [ "$attempt" -lt 5 ] && tail -n +"$((log_lines + 1))" \
			"$pf_log" 2>/dev/null | grep -q 'Address already in use'; then
			attempt=$((attempt + 1))
			choose_ports
			continue
		fi
		fail_start "postfix did not start"
	done
	record_session "$pf_queue/pid/master.pid"
}

choose_ports() {
	# shellcheck disable=SC2046 # five words, one per variable
	set -- $(pick_ports 5) || fail_start "cannot pick ports"
	[ $# -eq 6 ] || fail_start "cannot pick ports"
	ipv6=$1
	submission_port=$2
	smtps_port=$3
	wrongname_port=$4
	untrusted_port=$5
	notls_port=$6
}

# quote VALUE: VALUE as a single-quoted shell word.
quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

write_env() {
	{
		echo "# written by $prog start; for \". $dir/env\""
		echo "SERVER_DIR=$(quote "$dir")"
		echo "SMTP_HOST=127.0.0.1"
		echo "SMTP_HOSTNAME=localhost"
		echo "SERVER_IPV6=$ipv6"
		echo "SUBMISSION_PORT=$submission_port"
		echo "SMTPS_PORT=$smtps_port"
		echo "WRONGNAME_PORT=$wrongname_port"
		echo "UNTRUSTED_PORT=$untrusted_port"
		echo "NOTLS_PORT=$notls_port"
		echo "SMTP_USER=$(quote "$USER1")"
		echo "SMTP_PASSWORD=$(quote "$PASSWORD1")"
		echo "SMTP_USER2=$(quote "$USER2")"
		echo "SMTP_PASSWORD2=$(quote "$PASSWORD2")"
		echo "CERT_DIR=$(quote "$cert_dir")"
		echo "CA_FILE=$(quote "$cert_dir/ca.pem")"
		echo "UNTRUSTED_CA_FILE=$(quote "$cert_dir/other-ca.pem")"
		echo "MAILDIR=$(quote "$maildir")"
		echo "DSN_MAILDIR=$(quote "$dsn_maildir")"
		echo "POSTFIX_LOG=$(quote "$pf_log")"
		echo "DOVECOT_LOG=$(quote "$dc_log")"
		echo "LOCAL_DOMAIN=localhost"
		echo "MESSAGE_SIZE_LIMIT=$(postconf -c "$pf_etc" -h message_size_limit)"
		if [ "$gssapi" = 1 ]; then
			echo "GSSAPI=1"
			echo "KDC_ENV=$(quote "$kdc_env")"
		fi
	} >"$dir/env.tmp"
	mv -f "$dir/env.tmp" "$dir/env"
}

do_start() {
	# The distribution's interpreter starts fastest (a pyenv shim takes
	# most of a second); PYTHON3 overrides the choice.
	python=${PYTHON3:-python3}
	if [ -z "${PYTHON3:-}" ] && [ -x /usr/bin/python3 ]; then
		python=/usr/bin/python3
	fi
	for cmd in postfix dovecot "$python" certtool runuser; do
		command -v "$cmd" >/dev/null 2>&1 ||
			die "$cmd not found (needs postfix, dovecot-core, python3, gnutls-bin, util-linux)"
	done
	[ ${#dir} -le "$DIR_MAX" ] ||
		die "$dir is too long for Dovecot's sockets (at most $DIR_MAX bytes)"
	case $dir in
	*[!A-Za-z0-9/._+-]*)
		die "$dir: only letters, digits and / . _ + - are allowed in DIR" ;;
	esac
	if [ -f "$sessions_file" ]; then
		die "an instance seems to be running in $dir; run \"$prog stop $dir\" first"
	fi
	virtual_uid=$(id -u nobody)
	virtual_gid=$(id -g nobody)
	deadline=$(($(date +%s) + START_TIMEOUT))
	read_kdc_env

	make_tree
	check_reachable
	rm -f "$dir/env" "$dir/start.log"
	: >"$sessions_file"
	"$here/certs.sh" "$cert_dir" >>"$dir/start.log" 2>&1 ||
		fail_start "certs.sh failed"
	choose_ports
	write_dovecot_conf
	start_dovecot
	start_postfix
	probe "$(seconds_left)" 2>>"$dir/start.log" ||
		fail_start "services did not come up within $START_TIMEOUT s"
	write_env
}

# --- main ------------------------------------------------------------------

[ $# -eq 2 ] || usage
case $1 in
start | stop) ;;
*) usage ;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "$prog: must run as root (Postfix and Dovecot masters need it); skipping" >&2
	exit 77
fi

if [ "$1" = stop ] && [ ! -d "$2" ]; then
	exit 0
fi
mkdir -p "$2" || die "cannot create $2"
layout "$(cd "$2" && pwd -P)"
umask 022

case $1 in
start) do_start ;;
stop) do_stop ;;
esac
