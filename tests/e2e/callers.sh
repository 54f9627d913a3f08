#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# End-to-end: postbote installed as "sendmail" and called with the exact
# command lines of the programs that pipe mail into /usr/sbin/sendmail
# (cron, cronie, systemd-cron, at, mdadm, logwatch, sudo,
# unattended-upgrades, apt-listchanges, mail clients, git send-email, PHP),
# each with a message built the way that program builds it, against the
# private Postfix + Dovecot. The configuration is found the way a caller
# that knows nothing of postbote finds it: no -C, the user configuration
# $XDG_CONFIG_HOME/postbote/config, with a maildomain and an aliases file.
#
# Every case checks the exit status, the envelope (one delivered copy per
# recipient, Delivered-To and Return-Path), the body byte for byte, From,
# Date and Message-ID (added when missing, never doubled), that no Bcc is
# transmitted, that bare local names in From/To/Cc are qualified, and that
# every other header field arrives unchanged.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh disable=SC1091 # followed with shellcheck -x
. "$here/lib.sh"

servers_start || exit $?

# postbote under the name callers use.
mkdir "$E2E_TMP/bin" "$E2E_TMP/msg"
ln -s "${top_builddir:?}/src/postbote" "$E2E_TMP/bin/sendmail"
SENDMAIL=$E2E_TMP/bin/sendmail
msgdir=$E2E_TMP/msg

# The user configuration, as a person would write it.
XDG_CONFIG_HOME=$E2E_TMP/xdg
export XDG_CONFIG_HOME
mkdir -p "$XDG_CONFIG_HOME/postbote"
cat > "$E2E_TMP/aliases" <<'EOF'
# local recipients of this machine
root: admin@example.net
cron: cronadmin@example.net
default: catchall@example.net
EOF
cat > "$XDG_CONFIG_HOME/postbote/config" <<EOF
defaults
tls on
tls_trust_file $CA_FILE
auth on
timeout 30

account submission
host localhost
port $SUBMISSION_PORT
user $SMTP_USER
password $SMTP_PASSWORD
from $SMTP_USER
maildomain example.org
aliases $E2E_TMP/aliases

account default : submission
EOF
chmod 600 "$XDG_CONFIG_HOME/postbote/config"

# --- helpers ---------------------------------------------------------------

# header_values FILE NAME: the unfolded values of the header fields NAME
# (any case) in FILE's header block, one per line, without the blanks after
# the colon and without CRs.
header_values() {
	LC_ALL=C awk -v want="$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')" '
		{ sub(/\r$/, "") }
		/^$/ { exit }
		/^[ \t]/ { if (keep) value = value $0; next }
		{
			if (keep) print value
			name = tolower($0)
			sub(/:.*/, "", name)
			keep = (name == want)
			value = $0
			sub(/^[^:]*:[ \t]*/, "", value)
		}
		END { if (keep) print value }' "$1"
}

# filter_headers FILE DROP: FILE's header block (CRs removed) without the
# fields whose lower-case name matches the ERE DROP.
filter_headers() {
	LC_ALL=C awk -v drop="$2" '
		{ sub(/\r$/, "") }
		/^$/ { exit }
		/^[ \t]/ { if (!dropping) print; next }
		{
			name = tolower($0)
			sub(/:.*/, "", name)
			dropping = (name ~ drop)
			if (!dropping) print
		}' "$1"
}

# body_of FILE: everything after the empty line that ends the header block.
body_of() {
	LC_ALL=C sed '1,/^\r\{0,1\}$/d' "$1"
}

# log_size: the current size of the Postfix log, a mark for log_since.
log_size() {
	stat -c %s "$POSTFIX_LOG" 2>/dev/null || echo 0
}

# log_since MARK: the Postfix log after MARK.
log_since() {
	tail -c +"$(($1 + 1))" "$POSTFIX_LOG" 2>/dev/null
}

# wait_log MARK ERE TIMEOUT: wait until a line after MARK matches ERE.
wait_log() {
	local tenths=$(($3 * 10))
	while ! log_since "$1" | grep -qE -e "$2"; do
		[ "$tenths" -le 0 ] && return 1
		sleep 0.1
		tenths=$((tenths - 1))
	done
}

# wait_dsn MARK QID: wait until Postfix has queued the delivery status
# notices for QID (logged after MARK) and delivered them to $DSN_MAILDIR.
wait_dsn() {
	local q
	wait_log "$1" ": $2: sender delivery status notification: " 10 || return 1
	for q in $(log_since "$1" |
		sed -nE "s/.*: $2: sender delivery status notification: ([0-9A-Za-z]+).*/\\1/p"); do
		wait_log "$1" ": $q: removed" 10 || return 1
	done
}

# case_start NAME: a new case; the mailboxes are emptied.
case_start() {
	CASE=$1
	FILES=()
	NOTHING_SHOWN=
	clear_mail
}

# submit MESSAGE CMD...: run CMD (sendmail or a shell calling it) with
# MESSAGE on stdin and check that it exits 0; then wait until Postfix has
# finished with the message (its queue id, QID, logged as removed) and set
# FILES to the delivered copies and GOT to the first one without the trace
# fields. CMD's standard error is kept in $E2E_TMP/err.
submit() {
	local msg=$1 status=0 mark timeout=20
	shift
	mark=$(log_size)
	SUBMIT_MARK=$mark
	QID=
	"$@" < "$msg" > "$E2E_TMP/out" 2> "$E2E_TMP/err" || status=$?
	if [ "$status" -eq 0 ]; then
		ok "$CASE: exit status 0"
	else
		not_ok "$CASE: exit status 0" "exit status $status; stderr:
$(head -n 20 "$E2E_TMP/err")"
		timeout=2
	fi
	# The submission service logs "QID: client=..." when it takes MAIL.
	if wait_log "$mark" 'submission/smtpd\[[0-9]+\]: [0-9A-Za-z]+: client=' "$timeout"; then
		QID=$(log_since "$mark" |
			sed -nE 's/.*submission\/smtpd\[[0-9]+\]: ([0-9A-Za-z]+): client=.*/\1/p' |
			head -n 1)
		wait_log "$mark" ": $QID: removed" "$timeout" ||
			echo "# $CASE: Postfix did not finish with $QID" >&2
	fi
	mapfile -t FILES < <(mail_files "$MAILDIR")
	GOT=$E2E_TMP/got
	: > "$GOT"
	if [ "${#FILES[@]}" -gt 0 ]; then
		strip_trace_headers "${FILES[0]}" > "$GOT"
	fi
}

# delivered: true when the case has delivered copies to look at; otherwise
# reports the check named $1 as failed.
delivered() {
	[ "${#FILES[@]}" -gt 0 ] && return 0
	if [ -n "$NOTHING_SHOWN" ]; then
		not_ok "$CASE: $1" "nothing was delivered"
		return 1
	fi
	NOTHING_SHOWN=yes
	not_ok "$CASE: $1" "nothing was delivered; end of $POSTFIX_LOG:
$(tail -n 8 "$POSTFIX_LOG")"
	return 1
}

# check_envelope SENDER RECIPIENT...: exactly one copy per recipient
# (Delivered-To), each with Return-Path <SENDER>.
check_envelope() {
	local sender=$1 want got f bad=
	shift
	want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
	got=$(for f in "${FILES[@]}"; do
		header_values "$f" Delivered-To | head -n 1
	done | sort | tr '\n' ' ')
	assert_eq "$CASE: one copy for each of $*" "$want" "$got"
	delivered "envelope sender is <$sender>" || return
	for f in "${FILES[@]}"; do
		got=$(header_values "$f" Return-Path)
		[ "$got" = "<$sender>" ] || bad="$bad $got"
	done
	if [ -z "$bad" ]; then
		ok "$CASE: envelope sender is <$sender>"
	else
		not_ok "$CASE: envelope sender is <$sender>" "Return-Path:$bad"
	fi
}

# check_common MESSAGE [HIDDEN...]: what every case expects of the copies:
# all the same, the body byte for byte, From/Date/Message-ID once each
# (with a valid generated Date and Message-ID when MESSAGE had none), no Bcc
# field and no HIDDEN (Bcc) address anywhere, the other fields unchanged.
check_common() {
	local msg=$1 f n name bad='' drop='^(from|to|cc|bcc)$'
	shift

	if delivered "every copy is the same message"; then
		for f in "${FILES[@]}"; do
			strip_trace_headers "$f" | cmp -s - "$GOT" || bad="$bad $f"
		done
		if [ -z "$bad" ]; then ok "$CASE: every copy is the same message"
		else not_ok "$CASE: every copy is the same message" "differ:$bad"; fi
	fi

	if delivered "body arrives byte for byte"; then
		body_of "$msg" > "$E2E_TMP/want.body"
		body_of "$GOT" > "$E2E_TMP/got.body"
		if cmp -s "$E2E_TMP/want.body" "$E2E_TMP/got.body"; then
			ok "$CASE: body arrives byte for byte"
		else
			not_ok "$CASE: body arrives byte for byte" "$(diff -a "$E2E_TMP/want.body" "$E2E_TMP/got.body" | head -n 10)"
		fi
	fi

	if delivered "From, Date and Message-ID once each"; then
		bad=
		for name in From Date Message-ID; do
			n=$(header_values "$GOT" "$name" | wc -l)
			[ "$n" -eq 1 ] || bad="$bad $name:$n"
		done
		if [ -z "$bad" ]; then ok "$CASE: From, Date and Message-ID once each"
		else not_ok "$CASE: From, Date and Message-ID once each" "field:count$bad
$(filter_headers "$GOT" '^$')"; fi
	fi

	# What postbote adds when the message lacks it.
	if [ -z "$(header_values "$msg" Date)" ]; then
		drop='^(from|to|cc|bcc|date)$'
		if delivered "added Date is RFC 5322"; then
			if header_values "$GOT" Date | grep -qE \
				'^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}$'; then
				ok "$CASE: added Date is RFC 5322"
			else
				not_ok "$CASE: added Date is RFC 5322" "Date: $(header_values "$GOT" Date)"
			fi
		fi
	fi
	if [ -z "$(header_values "$msg" Message-ID)" ]; then
		drop=${drop%)\$}'|message-id)$'
		if delivered "added Message-ID is <left@right>"; then
			if header_values "$GOT" Message-ID | grep -qE '^<[^<>@ ]+@[^<>@ ]+>$'; then
				ok "$CASE: added Message-ID is <left@right>"
			else
				not_ok "$CASE: added Message-ID is <left@right>" "Message-ID: $(header_values "$GOT" Message-ID)"
			fi
		fi
	fi

	if delivered "no Bcc transmitted"; then
		bad=
		for f in "${FILES[@]}"; do
			strip_trace_headers "$f" > "$E2E_TMP/copy"
			if [ -n "$(header_values "$E2E_TMP/copy" Bcc)" ] ||
				[ -n "$(header_values "$E2E_TMP/copy" Resent-Bcc)" ]; then
				bad="$bad $f: Bcc field;"
			fi
			for name in "$@"; do
				if grep -qiF -e "$name" "$E2E_TMP/copy"; then
					bad="$bad $f: $name;"
				fi
			done
		done
		if [ -z "$bad" ]; then ok "$CASE: no Bcc transmitted"
		else not_ok "$CASE: no Bcc transmitted" "$bad"; fi
	fi

	if delivered "other header fields unchanged"; then
		filter_headers "$msg" "$drop" > "$E2E_TMP/want.hdr"
		filter_headers "$GOT" "$drop" > "$E2E_TMP/got.hdr"
		if cmp -s "$E2E_TMP/want.hdr" "$E2E_TMP/got.hdr"; then
			ok "$CASE: other header fields unchanged"
		else
			not_ok "$CASE: other header fields unchanged" "$(diff -a "$E2E_TMP/want.hdr" "$E2E_TMP/got.hdr" | head -n 10)"
		fi
	fi
}

# check_header NAME ERE: the delivered message has one NAME field, and its
# (unfolded) value matches ERE.
check_header() {
	local values
	delivered "$1: $2" || return
	values=$(header_values "$GOT" "$1")
	if [ "$(printf '%s' "$values" | grep -c '')" -eq 1 ] &&
		printf '%s\n' "$values" | grep -qE -e "$2"; then
		ok "$CASE: $1: $2"
	else
		not_ok "$CASE: $1: $2" "$1 field(s): ${values:-(none)}"
	fi
}

# --- the callers -----------------------------------------------------------

# Debian's cron (do_command.c): From "root (Cron Daemon)", To the crontab's
# owner, X-Cron-Env, no Date or Message-ID, the job's output as it came
# (here UTF-8, a Latin-1 file name and a line holding a single dot).
m=$msgdir/debian-cron
{
	printf 'From: root (Cron Daemon)\n'
	printf 'To: user\n'
	printf 'Subject: Cron <user@host> /usr/local/bin/backup --verbose\n'
	printf 'MIME-Version: 1.0\n'
	printf 'Content-Type: text/plain; charset=UTF-8\n'
	printf 'Content-Transfer-Encoding: 8bit\n'
	printf 'X-Cron-Env: <SHELL=/bin/sh>\n'
	printf 'X-Cron-Env: <HOME=/home/user>\n'
	printf 'X-Cron-Env: <PATH=/usr/bin:/bin>\n'
	printf 'X-Cron-Env: <LOGNAME=user>\n'
	printf '\n'
	printf 'backup: Sicherung von /home/user abgeschlossen \342\200\223 3,2 GiB \303\274bertragen \342\234\223\n'
	printf 'backup: skipped /home/user/M\374ll.txt (unreadable)\n'
	printf '.\n'
	printf 'backup: done.\n'
} > "$m"
case_start "Debian cron"
submit "$m" "$SENDMAIL" -FCronDaemon -i -B8BITMIME -oem user
check_envelope "$SMTP_USER" catchall@example.net
check_common "$m"
check_header From '^(root@example\.org \(Cron Daemon\)|"?Cron ?Daemon"? <root@example\.org>)$'
check_header To '^user@example\.org$'

# cronie: MAILCMD "sendmail -FCronDaemon -i -odi -oem -oi -t -f %s" with
# MAILFROM unset (root); root's crontab mails root.
m=$msgdir/cronie
cat > "$m" <<'EOF'
From: "(Cron Daemon)" <root>
To: root
Subject: Cron <root@host> run-parts /etc/cron.hourly
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Auto-Submitted: auto-generated
Precedence: bulk
X-Cron-Env: <LANG=de_DE.UTF-8>
X-Cron-Env: <SHELL=/bin/sh>
X-Cron-Env: <HOME=/root>
X-Cron-Env: <PATH=/usr/bin:/bin>
X-Cron-Env: <LOGNAME=root>
X-Cron-Env: <USER=root>

/etc/cron.hourly/0anacron:
anacron: Überspringe Job „cron.daily“ – läuft bereits
EOF
case_start "cronie"
submit "$m" "$SENDMAIL" -FCronDaemon -i -odi -oem -oi -t -f root
check_envelope root@example.org admin@example.net
check_common "$m"
check_header From '^"\(Cron Daemon\)" <root@example\.org>$'
check_header To '^root@example\.org$'

# systemd-cron's mail_on_failure: the unit's status, 8-bit.
m=$msgdir/systemd-cron
cat > "$m" <<'EOF'
From: root (systemd-cron)
To: user
Subject: [host] job cron-daily-logrotate.service failed
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit
Auto-Submitted: auto-generated
X-Mailer: systemd-cron 1.16.7

× cron-daily-logrotate.service - [Cron] "logrotate /etc/logrotate.conf"
     Loaded: loaded (/run/systemd/generator/cron-daily-logrotate.service; static)
     Active: failed (Result: exit-code) since Sun 2026-11-22 06:25:03 CET; 1ms ago
    Process: 4711 ExecStart=/usr/sbin/logrotate /etc/logrotate.conf (code=exited, status=1/FAILURE)
   Main PID: 4711 (code=exited, status=1/FAILURE)
        CPU: 12ms

Nov 22 06:25:03 host logrotate[4711]: error: stat of /var/log/größe.log failed: No such file or directory
EOF
case_start "systemd-cron"
submit "$m" "$SENDMAIL" -i -B8BITMIME user
check_envelope "$SMTP_USER" catchall@example.net
check_common "$m"
check_header From '^root@example\.org \(systemd-cron\)$'
check_header To '^user@example\.org$'

# at (atd.c): Subject and To only.
m=$msgdir/at
cat > "$m" <<'EOF'
Subject: Output from your job       17
To: user

/bin/sh: 1: frobnicate: not found
EOF
case_start "at"
submit "$m" "$SENDMAIL" -i user
check_envelope "$SMTP_USER" catchall@example.net
check_common "$m"
check_header From "^$SMTP_USER\$"
check_header To '^user@example\.org$'

# mdadm --monitor (Monitor.c): no -i, so no line may be a single dot.
m=$msgdir/mdadm
cat > "$m" <<'EOF'
From: mdadm monitoring <root>
To: root
Subject: DegradedArray event on /dev/md0:host

This is an automatically generated mail message from mdadm
running on host

A DegradedArray event had been detected on md device /dev/md0.

Faithfully yours, etc.

P.S. The /proc/mdstat file currently contains the following:

Personalities : [raid1] [linear] [multipath] [raid0] [raid6] [raid5] [raid4] [raid10]
md0 : active raid1 sda1[0]
      976630464 blocks super 1.2 [2/1] [U_]
      bitmap: 3/8 pages [12KB], 65536KB chunk

unused devices: <none>
EOF
case_start "mdadm"
submit "$m" "$SENDMAIL" -t
check_envelope "$SMTP_USER" admin@example.net
check_common "$m"
check_header From '^mdadm monitoring <root@example\.org>$'
check_header To '^root@example\.org$'

# logwatch: MailFrom defaults to the bare name "Logwatch".
m=$msgdir/logwatch
cat > "$m" <<'EOF'
To: root
From: Logwatch
Subject: Logwatch for host (Linux)
Auto-Submitted: auto-generated
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Type: text/plain; charset="iso-8859-1"


 ################### Logwatch 7.8 (01/22/23) ####################
        Processing Initiated: Sun Nov 22 06:25:02 2026
        Date Range Processed: yesterday
                              ( 2026-Nov-21 )
                              Period is day.
        Detail Level of Output: 0
        Type of Output/Format: mail / text
        Logfiles for Host: host
 ##################################################################

 --------------------- Disk Space Begin ------------------------

 Filesystem      Size  Used Avail Use% Mounted on
 /dev/sda1        59G   41G   16G  73% /

 ---------------------- Disk Space End -------------------------

 ###################### Logwatch End #########################
EOF
case_start "logwatch"
submit "$m" "$SENDMAIL" -t
check_envelope "$SMTP_USER" admin@example.net
check_common "$m"
check_header From '^Logwatch@example\.org$'
check_header To '^root@example\.org$'

# sudo (logging.c send_mail): mailerflags "-t".
m=$msgdir/sudo
cat > "$m" <<'EOF'
To: root
From: root
Auto-Submitted: auto-generated
Subject: *** SECURITY information for host ***

host : Nov 22 06:30:00 : mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/mallory ; USER=root ; COMMAND=/usr/bin/id
EOF
case_start "sudo"
submit "$m" "$SENDMAIL" -t
check_envelope "$SMTP_USER" admin@example.net
check_common "$m"
check_header From '^root@example\.org$'
check_header To '^root@example\.org$'

# unattended-upgrades: Python's MIMEText (base64 body), no From, Date or
# Message-ID.
m=$msgdir/unattended-upgrades
{
	printf 'Content-Type: text/plain; charset="utf-8"\n'
	printf 'MIME-Version: 1.0\n'
	printf 'Content-Transfer-Encoding: base64\n'
	printf 'Subject: [reboot required] unattended-upgrades result for host: SUCCESS\n'
	printf 'To: root\n'
	printf '\n'
	printf '%s\n' 'Unattended upgrade result: All upgrades installed' '' \
		'Warning: A reboot is required to complete this upgrade.' '' \
		'Packages that were upgraded:' ' linux-image-amd64 openssl libssl3' '' \
		'Unattended-upgrades log:' 'Starting unattended upgrades script' \
		'Allowed origins are: origin=Debian,codename=bookworm,label=Debian-Security' |
		base64 -w 76
} > "$m"
case_start "unattended-upgrades"
submit "$m" "$SENDMAIL" -oi -t
check_envelope "$SMTP_USER" admin@example.net
check_common "$m"
check_header From "^$SMTP_USER\$"
check_header To '^root@example\.org$'

# apt-listchanges: 8-bit changelog, no From, Date or Message-ID.
m=$msgdir/apt-listchanges
cat > "$m" <<'EOF'
Subject: apt-listchanges: news for host
To: root
Auto-Submitted: auto-generated
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

nodejs (18.20.4+dfsg-1~deb12u1) bookworm-security; urgency=medium

  * New upstream version 18.20.4+dfsg
  * Fix CVE-2024-22020 and CVE-2024-36138 (Schwachstellen in der
    Modul-Auflösung).

 -- Jérémy Lal <kapouer@melix.org>  Sat, 21 Nov 2026 12:00:00 +0100
EOF
case_start "apt-listchanges"
submit "$m" "$SENDMAIL" -oi -t
check_envelope "$SMTP_USER" admin@example.net
check_common "$m"
check_header From "^$SMTP_USER\$"
check_header To '^root@example\.org$'

# bsd-mailx: To, Cc and Bcc for sendmail to read, no From.
m=$msgdir/bsd-mailx
cat > "$m" <<'EOF'
To: alice, bob@example.net
Subject: lunch on Friday?
Cc: carol@example.net
Bcc: dave@example.net

Shall we try the new place at 12:30?
EOF
case_start "bsd-mailx"
submit "$m" "$SENDMAIL" -i -t
check_envelope "$SMTP_USER" catchall@example.net bob@example.net \
	carol@example.net dave@example.net
check_common "$m" dave@example.net
check_header From "^$SMTP_USER\$"
check_header To '^alice@example\.org, ?bob@example\.net$'
check_header Cc '^carol@example\.net$'

# GNU mailutils' mail: Date and Message-ID of its own, no From; the
# envelope sender given with -f becomes the From.
m=$msgdir/mailutils
cat > "$m" <<'EOF'
To: Ops Team <ops@example.net>
Cc: root
Subject: nightly report
X-Mailer: mail (GNU Mailutils 3.15)
Date: Sun, 22 Nov 2026 07:00:00 +0100
Message-ID: <20261122070000.4711@host.example>

All 14 jobs finished.
EOF
case_start "GNU mailutils"
submit "$m" "$SENDMAIL" -oi -f root@host.example -t
check_envelope root@host.example ops@example.net admin@example.net
check_common "$m"
check_header From '^root@host\.example$'
check_header To '^Ops Team <ops@example\.net>$'
check_header Cc '^root@example\.org$'

# s-nail with "from" set: a complete message, recipient after "--".
m=$msgdir/s-nail
cat > "$m" <<'EOF'
Date: Sun, 22 Nov 2026 08:15:42 +0100
From: Tester <tester@example.org>
To: rcpt@example.net
Subject: =?utf-8?Q?Gr=C3=BC=C3=9Fe?=
Message-ID: <20261122071542.Ab3Cd%tester@example.org>
User-Agent: s-nail v14.9.24
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hallo, schöne Grüße aus dem Büro!
EOF
case_start "s-nail"
submit "$m" "$SENDMAIL" -i -- rcpt@example.net
check_envelope "$SMTP_USER" rcpt@example.net
check_common "$m"
check_header To '^rcpt@example\.net$'

# mutt with $write_bcc: the Bcc field is in the message, the recipients on
# the command line, DSN options from $dsn_notify and $dsn_return.
m=$msgdir/mutt
cat > "$m" <<'EOF'
Date: Sun, 22 Nov 2026 09:00:00 +0100
From: Alice Example <alice@example.org>
To: one@example.net
Bcc: two@example.net
Subject: Re: Quarterly numbers
Message-ID: <aUB3cD4eF5gH6iJ7@example.org>
References: <20261121170000.GA1234@example.net>
In-Reply-To: <20261121170000.GA1234@example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Disposition: inline
Content-Transfer-Encoding: 8bit
User-Agent: Mutt/2.2.9 (2022-11-12)

On Sat, Nov 21, 2026 at 18:00:00 +0100, One wrote:
> Can you send the numbers?

Up 12 % – details on Monday.

-- 
Alice
EOF
mutt_args=(-oem -oi -f alice@example.org -B8BITMIME -N "success,failure" -R hdrs
	-- one@example.net two@example.net)
case_start "mutt"
submit "$m" "$SENDMAIL" "${mutt_args[@]}"
check_envelope alice@example.org one@example.net two@example.net
check_common "$m" two@example.net
check_header From '^Alice Example <alice@example\.org>$'
check_header To '^one@example\.net$'
# Postfix: every recipient sent, nothing deferred or bounced, and, as
# NOTIFY=SUCCESS asks, a success notice to the sender for both. (Postfix
# returns only the headers with a success notice whatever RET says, so RET
# is checked in the -v transcript below.)
if [ -n "$QID" ]; then
	log_since "$SUBMIT_MARK" | grep -F ": $QID: " > "$E2E_TMP/qid.log"
	if [ "$(grep -c 'status=sent' "$E2E_TMP/qid.log")" -eq 2 ] &&
		! grep -qE 'status=(deferred|bounced|expired|undeliverable)' "$E2E_TMP/qid.log"; then
		ok "$CASE: Postfix log: both sent, nothing failed"
	else
		not_ok "$CASE: Postfix log: both sent, nothing failed" "$(cat "$E2E_TMP/qid.log")"
	fi
	wait_dsn "$SUBMIT_MARK" "$QID"
	cat "$DSN_MAILDIR"/new/* > "$E2E_TMP/dsn" 2>/dev/null
	if grep -q '^Final-Recipient: rfc822; *one@example.net' "$E2E_TMP/dsn" &&
		grep -q '^Final-Recipient: rfc822; *two@example.net' "$E2E_TMP/dsn" &&
		[ "$(grep -c '^Action: delivered' "$E2E_TMP/dsn")" -eq 2 ] &&
		grep -q '^To: alice@example.org' "$E2E_TMP/dsn"; then
		ok "$CASE: success notice to the sender for both recipients"
	else
		not_ok "$CASE: success notice to the sender for both recipients" \
			"notice(s) in $DSN_MAILDIR: $(head -n 60 "$E2E_TMP/dsn")"
	fi
else
	not_ok "$CASE: Postfix log: both sent, nothing failed" "no queue id in $POSTFIX_LOG"
	not_ok "$CASE: success notice to the sender for both recipients" "not submitted"
fi
# The same with -v: the DSN parameters on MAIL and RCPT.
case_start "mutt -v"
submit "$m" "$SENDMAIL" -v "${mutt_args[@]}"
cp "$E2E_TMP/err" "$E2E_TMP/mutt-v.err"
if grep -qE '^(\[ *[0-9]+\.[0-9]+\] )?--> MAIL FROM:<alice@example\.org>.* RET=HDRS( |$)' "$E2E_TMP/mutt-v.err"; then
	ok "$CASE: RET=HDRS on MAIL"
else
	not_ok "$CASE: RET=HDRS on MAIL" "$(grep -- '-->' "$E2E_TMP/mutt-v.err" | head -n 12)"
fi
for r in one two; do
	if grep -qE "^(\\[ *[0-9]+\\.[0-9]+\\] )?--> RCPT TO:<$r@example\\.net>.* NOTIFY=SUCCESS,FAILURE( |\$)" "$E2E_TMP/mutt-v.err"; then
		ok "$CASE: NOTIFY=SUCCESS,FAILURE on RCPT $r@example.net"
	else
		not_ok "$CASE: NOTIFY=SUCCESS,FAILURE on RCPT $r@example.net" "$(grep -- '-->' "$E2E_TMP/mutt-v.err" | head -n 12)"
	fi
done
check_envelope alice@example.org one@example.net two@example.net
# Its success notice must not spill into the next case.
[ -n "$QID" ] && wait_dsn "$SUBMIT_MARK" "$QID"

# git send-email: a patch with "From " and "." at line starts, an in-body
# From and "---" lines; recipients after the options.
m=$msgdir/git-send-email
cat > "$m" <<'EOF'
From: Alice Example <alice@example.org>
To: rcpt1@example.net
Cc: rcpt2@example.net
Subject: [PATCH v2 1/1] message: keep lines that start with a dot
Date: Sun, 22 Nov 2026 10:00:00 +0100
Message-ID: <20261122090000.31337-1-alice@example.org>
X-Mailer: git-send-email 2.39.5
MIME-Version: 1.0
Content-Transfer-Encoding: 8bit

From: Bob Builder <bob@example.net>

From the start, a line holding a single dot ended the message:
.
..and a line starting with two dots lost one.
From now on both arrive.
>From lines stay as they are.

Reported-by: Jörg Müller <joerg@example.net>
Signed-off-by: Bob Builder <bob@example.net>
Signed-off-by: Alice Example <alice@example.org>
---
v2: also covers ".." lines
---
 src/message.c | 3 ++-
 1 file changed, 2 insertions(+), 1 deletion(-)

diff --git a/src/message.c b/src/message.c
index 3b18e51..a8c2d1f 100644
--- a/src/message.c
+++ b/src/message.c
@@ -10,7 +10,8 @@ static int emit(FILE *f)
 	/* a line that is only "." must be stuffed */
-	if (line[0] == '.')
+	if (line[0] == '.' &&
+	    line[1] != '\0')
 		putc('.', f);
 	return 0;
 }
-- 
2.39.5
.
EOF
case_start "git send-email"
submit "$m" "$SENDMAIL" -f alice@example.org -i rcpt1@example.net rcpt2@example.net
check_envelope alice@example.org rcpt1@example.net rcpt2@example.net
check_common "$m"
check_header From '^Alice Example <alice@example\.org>$'

# PHP's mail(): popen() of sendmail_path "SENDMAIL -t -i" plus
# additional_params; To and Subject by PHP with "\n", the script's
# additional_headers joined with "\r\n".
m=$msgdir/php-mail
{
	printf 'To: rcpt@example.net\n'
	printf 'Subject: Ihre Bestellung #1042\n'
	printf 'From: shop@example.org\r\nReply-To: service@example.org\r\nX-Mailer: PHP/8.2.26\n'
	printf '\n'
	printf 'Vielen Dank f\303\274r Ihre Bestellung.\nDie Ware wird morgen versandt.\n'
} > "$m"
case_start "PHP mail()"
submit "$m" sh -c "$SENDMAIL -t -i -fuser@example.org"
check_envelope user@example.org rcpt@example.net
check_common "$m"
check_header From '^shop@example\.org$'
check_header To '^rcpt@example\.net$'

# PHPMailer (isSendmail): popen("SENDMAIL -oi -f'sender' -t"); with the
# sendmail transport it writes the Bcc field for sendmail to remove.
m=$msgdir/phpmailer
cat > "$m" <<'EOF'
Date: Sun, 22 Nov 2026 11:00:00 +0100
To: Kunde <kunde@example.net>
From: Webshop <sender@example.org>
Cc: buchhaltung@example.net
Bcc: archiv@example.net
Reply-To: Service <service@example.org>
Subject: =?UTF-8?Q?Bestellbest=C3=A4tigung?=
Message-ID: <Xk3bA9dL2pQ7rT5vW8yZ1cE4gH6jM0nS@example.org>
X-Mailer: PHPMailer 6.9.1 (https://github.com/PHPMailer/PHPMailer)
MIME-Version: 1.0
Content-Type: multipart/alternative;
 boundary="b1=_Xk3bA9dL2pQ7rT5vW8yZ1cE4gH6jM0nS"
Content-Transfer-Encoding: 8bit

This is a multi-part message in MIME format.
--b1=_Xk3bA9dL2pQ7rT5vW8yZ1cE4gH6jM0nS
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

Vielen Dank für Ihre Bestellung.

--b1=_Xk3bA9dL2pQ7rT5vW8yZ1cE4gH6jM0nS
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: 8bit

<p>Vielen Dank für Ihre Bestellung.</p>

--b1=_Xk3bA9dL2pQ7rT5vW8yZ1cE4gH6jM0nS--
EOF
case_start "PHPMailer"
submit "$m" sh -c "$SENDMAIL -oi -f'sender@example.org' -t"
check_envelope sender@example.org kunde@example.net buchhaltung@example.net \
	archiv@example.net
check_common "$m" archiv@example.net
check_header From '^Webshop <sender@example\.org>$'

# -t and recipients on the command line: all get it, one@ only once.
m=$msgdir/t-and-args
cat > "$m" <<'EOF'
From: backup@example.org
To: One <one@example.net>
Cc: two@example.net
Subject: backup report

Backup of /srv finished: 1742 files, 0 errors.
EOF
case_start "-t plus command-line recipients"
submit "$m" "$SENDMAIL" -i -t one@example.net extra@example.net
check_envelope "$SMTP_USER" one@example.net two@example.net extra@example.net
check_common "$m"
check_header To '^One <one@example\.net>$'

# Root's mail through the aliases file.
m=$msgdir/aliases
cat > "$m" <<'EOF'
To: root, cron
Subject: RAID check finished on host

md0: check finished, 0 mismatches.
EOF
case_start "aliases: root and cron"
submit "$m" "$SENDMAIL" -i root cron
check_envelope "$SMTP_USER" admin@example.net cronadmin@example.net
check_common "$m"
check_header To '^root@example\.org, ?cron@example\.org$'

m=$msgdir/default-alias
cat > "$m" <<'EOF'
To: nobodyelse
Subject: a name without an alias

Goes to the default alias.
EOF
case_start "aliases: default"
submit "$m" "$SENDMAIL" -i nobodyelse
check_envelope "$SMTP_USER" catchall@example.net
check_common "$m"
check_header To '^nobodyelse@example\.org$'

finish
