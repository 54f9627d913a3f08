#!/bin/bash
# End-to-end: the system-wide setup. postbote is installed setgid to the
# credentials group "postbote", /etc/postbote.conf is root:postbote 0640 and
# holds the relay password; an ordinary user's cron job sends through it
# without being able to read the password, by any means postbote offers.
#
# The host's /etc is not touched: the test copies /etc, adds postbote.conf
# to the copy, and binds the copy over /etc in a private mount namespace
# (unshare -m) for each run. It needs root (to make the user, the group and
# the namespace), and is skipped otherwise.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
[ "$(id -u)" = 0 ] || { echo "# SKIP: needs root"; exit 77; }
for tool in unshare setpriv useradd groupadd; do
	command -v "$tool" >/dev/null || { echo "# SKIP: $tool missing"; exit 77; }
done
group=postbote
user=postbote-e2e
getent group "$group" >/dev/null || groupadd --system "$group" || exit 99
if ! getent passwd "$user" >/dev/null; then
	useradd --no-create-home --shell /bin/sh "$user" || exit 99
	trap_add "userdel '$user' 2>/dev/null"
fi

servers_start
work=$E2E_TMP
chmod 755 "$work"
mkdir -p "$work/bin" "$work/home"
cp "$POSTBOTE" "$work/bin/postbote"
chgrp "$group" "$work/bin/postbote"
chmod 2755 "$work/bin/postbote"
cp "$CA_FILE" "$work/ca.pem"
chmod 644 "$work/ca.pem"
chown "$user:$user" "$work/home"
chmod 700 "$work/home"
printf 'Subject: from cron\n\nsent by an unprivileged user\n' > "$work/msg.eml"
chmod 644 "$work/msg.eml"

cp -a /etc "$work/etc"
# system_conf [password line]: write the copy's /etc/postbote.conf.
system_conf() {
	cat > "$work/etc/postbote.conf" <<CONF
account relay
host localhost
port $SUBMISSION_PORT
tls_trust_file $work/ca.pem
user $SMTP_USER
from $SMTP_USER
${1:-password $SMTP_PASSWORD}
account default : relay
CONF
	chown root:"$group" "$work/etc/postbote.conf"
	chmod 640 "$work/etc/postbote.conf"
}

# as_user CMD...: run CMD as the ordinary user with the copied /etc.
as_user() {
	unshare -m sh -c 'mount --make-rprivate / && mount --bind "$0" /etc && exec "$@"' \
		"$work/etc" setpriv --reuid="$user" --regid="$user" --init-groups \
		env -i HOME="$work/home" PATH="${PB_PATH:-/usr/bin:/bin}" "$@"
}

system_conf
if as_user cat /etc/postbote.conf >/dev/null 2>&1; then
	not_ok "the user cannot read /etc/postbote.conf"
else
	ok "the user cannot read /etc/postbote.conf"
fi

clear_mail
assert_exit 0 "the user's mail goes out through the system account" \
	as_user "$work/bin/postbote" -v someone@example.net < "$work/msg.eml" 2> "$work/err"
if wait_for_mail 1; then ok "and is delivered"; else not_ok "and is delivered" "$(cat "$work/err")"; fi
assert_not_contains "-v shows no password" "$work/err" "$SMTP_PASSWORD"

assert_exit 78 "-C /etc/postbote.conf: read without the group, so refused" \
	as_user "$work/bin/postbote" -C /etc/postbote.conf someone@example.net < "$work/msg.eml" 2> "$work/err"
assert_contains "with the reason" "$work/err" "Permission denied"

as_user "$work/bin/postbote" --pretend someone@example.net < "$work/msg.eml" > "$work/out" 2>&1
assert_not_contains "--pretend shows no password" "$work/out" "$SMTP_PASSWORD"
assert_exit 78 "--oauth2-token is not offered for the system account" \
	as_user "$work/bin/postbote" --oauth2-token 2> "$work/err"

assert_exit 0 "-X writes the dialogue only where the user may write" \
	as_user "$work/bin/postbote" -X "$work/home/trace" someone@example.net < "$work/msg.eml"
assert_not_contains "and it holds no password" "$work/home/trace" "$SMTP_PASSWORD"
mkdir -p "$work/group-only"
chgrp "$group" "$work/group-only"
chmod 770 "$work/group-only"
as_user "$work/bin/postbote" -X "$work/group-only/trace" someone@example.net \
	< "$work/msg.eml" > /dev/null 2>&1
if [ -e "$work/group-only/trace" ]; then
	not_ok "-X cannot write where only the group may"
else
	ok "-X cannot write where only the group may"
fi

# A password file only the group may read, and passwordeval, work too; the
# caller's PATH does not choose the command that reads the secret.
printf '%s\n' "$SMTP_PASSWORD" > "$work/etc/postbote.secret"
chown root:"$group" "$work/etc/postbote.secret"
chmod 640 "$work/etc/postbote.secret"
system_conf "password_file /etc/postbote.secret"
clear_mail
assert_exit 0 "password_file readable only by the group" \
	as_user "$work/bin/postbote" someone@example.net < "$work/msg.eml"
mkdir -p "$work/evil"
printf '#!/bin/sh\ntouch %s/evil/ran\n/bin/cat "$@" > %s/evil/stolen\n' "$work" "$work" > "$work/evil/cat"
chmod 755 "$work/evil/cat"
chmod 777 "$work/evil"
system_conf "passwordeval cat /etc/postbote.secret"
clear_mail
PB_PATH=$work/evil:/usr/bin:/bin assert_exit 0 "passwordeval with the group's rights" \
	as_user "$work/bin/postbote" someone@example.net < "$work/msg.eml"
if [ -e "$work/evil/ran" ]; then
	not_ok "the caller's PATH does not pick the command" "$(cat "$work/evil/stolen" 2>&1)"
else
	ok "the caller's PATH does not pick the command"
fi

chmod 644 "$work/etc/postbote.conf"
system_conf
chmod 644 "$work/etc/postbote.conf"
assert_exit 78 "a system file readable by everyone is still refused" \
	as_user "$work/bin/postbote" someone@example.net < "$work/msg.eml" 2> "$work/err"
assert_contains "with the fix" "$work/err" "chmod 600 /etc/postbote.conf"
chmod 660 "$work/etc/postbote.conf"
assert_exit 78 "and one the group may write" \
	as_user "$work/bin/postbote" someone@example.net < "$work/msg.eml" 2> "$work/err"

finish
