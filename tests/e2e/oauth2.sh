#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# End-to-end: postbote's OAuth2 client against tests/servers/tokenserver.py
# over HTTPS on 127.0.0.1: --oauth2-token (refresh grant, cache, expiry,
# rotation, a changed configured token, *_eval, presets, every kind of
# failure) and --oauth2-authorize in the browser flow (the test plays the
# browser) and the device flow. No credential may show up on stderr.
#
# Each condition is a single-quoted string that check runs with eval, so its
# variables are expanded then, not where it is written; the helpers are
# called from inside those strings.
# shellcheck disable=SC2016,SC2034,SC2317
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh disable=SC1091 # followed with shellcheck -x
. "$here/lib.sh"

POSTBOTE=${POSTBOTE:-$top_builddir/src/postbote}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
command -v certtool >/dev/null 2>&1 || { echo "# SKIP: certtool not found" >&2; exit 77; }

certs=$E2E_TMP/certs
sh "$top_srcdir/tests/servers/certs.sh" "$certs" || exit 99
record=$E2E_TMP/record.jsonl
script_file=$E2E_TMP/script.json
echo '{}' > "$script_file"
"$PY" "$top_srcdir/tests/servers/tokenserver.py" --cert "$certs/server.pem" \
	--key "$certs/server-key.pem" --port-file "$E2E_TMP/port" \
	--script "$script_file" --record "$record" {E2E_TAP_FD}>&- &
server_pid=$!
trap_add "kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null"
for _ in $(seq 50); do [ -s "$E2E_TMP/port" ] && break; sleep 0.1; done
[ -s "$E2E_TMP/port" ] || { echo "# error: the token server did not start" >&2; exit 99; }
PORT=$(cat "$E2E_TMP/port")
BASE=https://127.0.0.1:$PORT
export XDG_STATE_HOME=$E2E_TMP/state
unset DISPLAY WAYLAND_DISPLAY
stderr_all=$E2E_TMP/stderr-all
: > "$stderr_all"
: > "$record"

# script JSON: the server's behaviour from now on (a new file, so that the
# server reads it again and starts its canned answers from the top).
script() {
	printf '%s\n' "$1" > "$script_file.new" && mv "$script_file.new" "$script_file"
}

# conf NAME BODY: a config file with one account NAME (mode 600).
conf() {
	{
		echo "account $1"
		echo "host localhost"
		echo "user $1@example.org"
		printf '%s\n' "$2"
	} > "$E2E_TMP/$1.conf"
	chmod 600 "$E2E_TMP/$1.conf"
}

# A custom provider at the token server with client id and secret.
base_conf() {
	printf 'oauth2_provider custom\noauth2_token_url %s/token\noauth2_client_id test-client\noauth2_trust_file %s\n%s' \
		"$BASE" "$certs/ca.pem" "${1:-}"
}

# token NAME [postbote options]: postbote --oauth2-token for account NAME;
# stdout in $OUT, stderr in $ERR (and collected), exit status in $RC.
OUT=$E2E_TMP/token.out
ERR=$E2E_TMP/token.err
token() {
	local name=$1
	shift
	RC=0
	"$POSTBOTE" -C "$E2E_TMP/$name.conf" "$@" --oauth2-token > "$OUT" 2> "$ERR" || RC=$?
	cat "$ERR" >> "$stderr_all"
}

requests() { wc -l < "$record"; }

# field N SECTION KEY: a field of the N-th recorded request (1-based; -1
# is the last), SECTION form or query.
field() {
	"$PY" - "$record" "$@" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
n, section, key = int(sys.argv[2]), sys.argv[3], sys.argv[4]
row = rows[n - 1 if n > 0 else n]
value = row.get(section) or {}
print(value.get(key, "<absent>") if section in ("form", "query") else row.get(section))
PY
}

store_of() { ls "$XDG_STATE_HOME"/postbote/oauth2/"$1"-*.json; }
store_field() {
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], "<absent>"))' \
		"$(store_of "$1")" "$2"
}
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# check NAME CONDITION-COMMAND...: ok when the command succeeds, else
# not_ok with what postbote said.
check() {
	local name=$1
	shift
	if "$@"; then
		ok "$name"
	else
		not_ok "$name" "exit $RC; stdout: $(cat "$OUT" 2>/dev/null)
stderr: $(cat "$ERR" 2>/dev/null)
last request: $(tail -n 1 "$record")"
	fi
}
has() { grep -qF -e "$2" "$1"; }

# --- the refresh grant and the cache -----------------------------------------

script '{"refresh_tokens": ["rt-one", "rt-two"], "client_secret": "cs-xyz"}'
conf first "$(base_conf 'oauth2_client_secret cs-xyz
oauth2_refresh_token rt-one')"
token first
check "first --oauth2-token fetches a token with the refresh grant" \
	eval '[ $RC -eq 0 ] && grep -qx "at-[0-9]*" "$OUT" && [ ! -s "$ERR" ] && [ "$(requests)" -eq 1 ]'
first_token=$(cat "$OUT")
check "the request: grant_type, refresh token, client id and secret, scope left out" \
	eval '[ "$(field -1 form grant_type)" = refresh_token ] &&
	[ "$(field -1 form refresh_token)" = rt-one ] &&
	[ "$(field -1 form client_id)" = test-client ] &&
	[ "$(field -1 form client_secret)" = cs-xyz ] &&
	[ "$(field -1 form scope)" = "<absent>" ]'
check "the request: form content type, JSON accepted, User-Agent postbote/VERSION" \
	eval '[ "$(field -1 content_type x)" = application/x-www-form-urlencoded ] &&
	[ "$(field -1 accept x)" = application/json ] &&
	field -1 user_agent x | grep -q "^postbote/[0-9]"'
token first
check "a second call takes the cached token (no new request)" \
	eval '[ $RC -eq 0 ] && [ "$(cat "$OUT")" = "$first_token" ] && [ "$(requests)" -eq 1 ]'
store=$(store_of first)
check "token store mode 0600 in a directory of mode 0700" \
	eval '[ "$(stat -c %a "$store")" = 600 ] && [ "$(stat -c %a "$(dirname "$store")")" = 700 ]'
check "the store records which configured refresh token it comes from" \
	eval '[ "$(store_field first refresh_token_source)" = "sha256:$(sha256 rt-one)" ] &&
	[ "$(store_field first refresh_token)" = "<absent>" ]'

# A token valid for less than a minute is not used again.
script '{"refresh_tokens": ["rt-one"], "expires_in": "30"}'
conf expiry "$(base_conf 'oauth2_refresh_token rt-one')"
token expiry
t1=$(cat "$OUT")
before=$(requests)
token expiry
check "a token that expires within a minute is refreshed (expires_in as a string)" \
	eval '[ $RC -eq 0 ] && [ "$(cat "$OUT")" != "$t1" ] && [ "$(requests)" -eq $((before + 1)) ] &&
	[ "$(field -1 form client_secret)" = "<absent>" ]'

# Rotation: the provider sends a new refresh token and revokes the old one.
script '{"refresh_tokens": ["rt-rot", "rt-two"], "rotate": true, "expires_in": 30}'
conf rot "$(base_conf 'oauth2_refresh_token rt-rot')"
token rot
rotated=$(store_field rot refresh_token)
token rot
check "a rotated refresh token is stored and used for the next refresh" \
	eval '[ $RC -eq 0 ] && [ "$rotated" != "<absent>" ] && [ "$rotated" != rt-rot ] &&
	[ "$(field -1 form refresh_token)" = "$rotated" ]'
check "the newest rotated refresh token is persisted" \
	eval 'r=$(store_field rot refresh_token); [ "$r" != "$rotated" ] && [ "$r" != "<absent>" ] &&
	[ "$(stat -c %a "$(store_of rot)")" = 600 ]'

# The administrator puts another refresh token into the config: it wins over
# the rotated one, and the cached access token (from the old one) is void.
script '{"refresh_tokens": ["rt-two"], "rotate": true, "expires_in": 3600}'
token rot
conf rot "$(base_conf 'oauth2_refresh_token rt-two')"
before=$(requests)
token rot
check "a changed oauth2_refresh_token wins over the stored token and cache" \
	eval '[ $RC -eq 0 ] && [ "$(requests)" -eq $((before + 1)) ] &&
	[ "$(field -1 form refresh_token)" = rt-two ] &&
	[ "$(store_field rot refresh_token_source)" = "sha256:$(sha256 rt-two)" ]'

# A store that cannot be written (a file size limit of 0): the token is
# still printed, with a warning.
script '{"refresh_tokens": ["rt-one"]}'
conf full "$(base_conf 'oauth2_refresh_token rt-one')"
# (The output goes through a pipe: the limit applies to files only.)
(trap '' XFSZ; ulimit -f 0; exec "$POSTBOTE" -C "$E2E_TMP/full.conf" --oauth2-token) 2>&1 |
	cat > "$ERR"
RC=${PIPESTATUS[0]}
grep -v '^at-' "$ERR" >> "$stderr_all"
check "a store that cannot be written: the token anyway, and a warning" \
	eval '[ $RC -eq 0 ] && grep -qx "at-[0-9]*" "$ERR" &&
	has "$ERR" "postbote: warning: OAuth2: token store $(store_of full): cannot write it"'

# *_eval
script '{"refresh_tokens": ["rt-one"], "client_secret": "cs-xyz"}'
conf evals "$(base_conf 'oauth2_client_secret_eval "echo cs-xyz"
oauth2_refresh_token_eval "printf %s rt-one"')"
token evals
check "oauth2_refresh_token_eval and oauth2_client_secret_eval" \
	eval '[ $RC -eq 0 ] && [ "$(field -1 form refresh_token)" = rt-one ] &&
	[ "$(field -1 form client_secret)" = cs-xyz ]'
conf evalfail "$(base_conf 'oauth2_refresh_token_eval "exit 4"')"
token evalfail
check "a failing oauth2_refresh_token_eval: exit 77, named" \
	eval '[ $RC -eq 77 ] && has "$ERR" "oauth2_refresh_token_eval: the command \"exit 4\" failed"'

# Presets, with the endpoint overridden to reach the test server.
script '{"refresh_tokens": ["rt-one"]}'
conf google "oauth2_provider google
oauth2_token_url $BASE/token
oauth2_client_id test-client
oauth2_trust_file $certs/ca.pem
oauth2_refresh_token rt-one"
token google
check "provider google: its scope, the token URL overridden" \
	eval '[ $RC -eq 0 ] && [ "$(field -1 form scope)" = "https://mail.google.com/" ]'
conf ms "oauth2_provider microsoft
oauth2_token_url $BASE/token
oauth2_client_id test-client
oauth2_trust_file $certs/ca.pem
oauth2_refresh_token rt-one"
token ms
check "provider microsoft: its scope" \
	eval '[ $RC -eq 0 ] && [ "$(field -1 form scope)" = "https://outlook.office.com/SMTP.Send offline_access" ]'
conf scoped "$(base_conf 'oauth2_refresh_token rt-one
oauth2_scope "a b"')"
token scoped
check "oauth2_scope is sent" eval '[ $RC -eq 0 ] && [ "$(field -1 form scope)" = "a b" ]'

# --- failures ----------------------------------------------------------------

conf fail "$(base_conf 'oauth2_refresh_token rt-revoked')"
script '{"refresh_tokens": ["rt-one"]}'
token fail
check "invalid_grant: exit 77, error, description and what to do" \
	eval '[ $RC -eq 77 ] && has "$ERR" "HTTP 400 invalid_grant (Token has been expired or revoked.)" &&
	has "$ERR" "replace oauth2_refresh_token, or remove it and run postbote --account fail --oauth2-authorize" &&
	! has "$ERR" rt-revoked'

script '{"responses": {"token": [{"status": 503, "body": "<h1>Service Unavailable</h1>"}]}}'
token fail
check "HTTP 503: exit 75 (try later), status and body shown" \
	eval '[ $RC -eq 75 ] && has "$ERR" "HTTP 503" && has "$ERR" "<h1>Service Unavailable</h1>"'
script '{"responses": {"token": [{"status": 429, "json": {"error": "rate_limited"}}]}}'
token fail
check "HTTP 429: exit 75" eval '[ $RC -eq 75 ] && has "$ERR" "HTTP 429 rate_limited"'
script '{"responses": {"token": [{"status": 404, "body": "no such page\u0007 for rt-revoked"}]}}'
token fail
check "HTTP 404 without JSON: exit 77, status and a visible snippet, no token" \
	eval '[ $RC -eq 77 ] && has "$ERR" "HTTP 404 with something other than the JSON" &&
	has "$ERR" "no such page\\x07 for <redacted>" && ! has "$ERR" rt-revoked'
script '{"responses": {"token": [{"status": 200, "json": {"token_type": "Bearer", "refresh_token": "rt-leak"}}]}}'
token fail
check "HTTP 200 without access_token: exit 77, the fields named, not their values" \
	eval '[ $RC -eq 77 ] && has "$ERR" "without an access_token (fields: token_type, refresh_token)" &&
	! has "$ERR" rt-leak'
script '{"responses": {"token": [{"status": 200, "body": "access_token=abc"}]}}'
token fail
check "HTTP 200 that is not JSON: exit 77" \
	eval '[ $RC -eq 77 ] && has "$ERR" "HTTP 200 with something other than the JSON"'

script '{"refresh_tokens": ["rt-one"], "responses": {"token": [{"delay": 3}]}}'
conf slow "$(base_conf 'oauth2_refresh_token rt-one
timeout 1')"
start=$(date +%s)
token slow
check "an endpoint slower than the timeout: exit 75 within the timeout" \
	eval '[ $RC -eq 75 ] && [ $(($(date +%s) - start)) -le 2 ] && has "$ERR" "no answer from the token endpoint"'

conf badca "$(base_conf 'oauth2_refresh_token rt-one' | sed "s|$certs/ca.pem|$certs/other-ca.pem|")"
token badca
check "a certificate from another CA: exit 77, the endpoint and oauth2_trust_file named" \
	eval '[ $RC -eq 77 ] && has "$ERR" "the certificate of the token endpoint $BASE/token could not be verified against oauth2_trust_file $certs/other-ca.pem"'
conf systemca "$(base_conf 'oauth2_refresh_token rt-one' | grep -v oauth2_trust_file)"
token systemca
check "not in the system trust store: exit 77, oauth2_trust_file suggested" \
	eval '[ $RC -eq 77 ] && has "$ERR" "could not be verified against the system trust store" &&
	has "$ERR" "name that CA'"'"'s certificate file in oauth2_trust_file"'

dead_port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
conf dead "$(base_conf 'oauth2_refresh_token rt-one' | sed "s|$BASE|https://127.0.0.1:$dead_port|")"
token dead
check "an unreachable endpoint: exit 75" \
	eval '[ $RC -eq 75 ] && has "$ERR" "no answer from the token endpoint https://127.0.0.1:$dead_port/token"'

conf none "$(base_conf)"
token none
check "no refresh token anywhere: exit 77, --oauth2-authorize suggested" \
	eval '[ $RC -eq 77 ] && has "$ERR" "no refresh token for account none: run postbote --account none --oauth2-authorize"'

conf plain "oauth2_token_url http://127.0.0.1:$PORT/token
oauth2_client_id test-client"
token plain
check "an http:// token URL is refused by the configuration (exit 78)" \
	eval '[ $RC -eq 78 ] && has "$ERR" "oauth2_token_url: expected an https:// URL"'
conf custom "oauth2_provider custom
oauth2_client_id test-client"
token custom
check "oauth2_provider custom without oauth2_token_url: exit 78" \
	eval '[ $RC -eq 78 ] && has "$ERR" "oauth2_provider custom needs oauth2_token_url"'
conf noclient "oauth2_provider google"
token noclient
check "no oauth2_client_id: exit 78" eval '[ $RC -eq 78 ] && has "$ERR" "oauth2_client_id is missing"'

chmod 644 "$(store_of first)"
token first
check "a token store readable by others is refused (exit 73, chmod 600 suggested)" \
	eval '[ $RC -eq 73 ] && has "$ERR" "is open to others (mode 0644); run: chmod 600"'
chmod 600 "$(store_of first)"

# --- --oauth2-authorize: the browser flow ----------------------------------------

# authorize NAME FLOW: start postbote --oauth2-authorize in the background.
AOUT=$E2E_TMP/authorize.out
AERR=$E2E_TMP/authorize.err
authorize() {
	: > "$AOUT"
	"$POSTBOTE" -C "$E2E_TMP/$1.conf" "--oauth2-authorize${2:+=$2}" > "$AOUT" 2> "$AERR" &
	auth_pid=$!
}
auth_wait() {
	RC=0
	wait "$auth_pid" || RC=$?
	cat "$AERR" >> "$stderr_all"
	cp "$AOUT" "$OUT"
	cp "$AERR" "$ERR"
}

# browser: wait for the URL postbote prints, and follow it like a browser
# (the server's 302 leads to postbote's listener); the page goes to $PAGE.
PAGE=$E2E_TMP/page
browser() {
	"$PY" - "$AOUT" "$certs/ca.pem" > "$PAGE" 2>&1 <<'PY'
import re, ssl, sys, time, urllib.error, urllib.request
for _ in range(100):
    m = re.search(r"^  (https://\S+)$", open(sys.argv[1]).read(), re.M)
    if m:
        break
    time.sleep(0.1)
else:
    sys.exit("no URL printed")
ctx = ssl.create_default_context(cafile=sys.argv[2])
try:
    print(urllib.request.urlopen(m.group(1), context=ctx, timeout=10).read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
PY
}

web_conf() { # NAME [PROVIDER]
	conf "$1" "oauth2_provider ${2:-google}
oauth2_token_url $BASE/token
oauth2_auth_url $BASE/authorize
oauth2_device_url $BASE/device
oauth2_client_id test-client
oauth2_trust_file $certs/ca.pem"
}
web_conf web
script '{"expires_in": 30}'
before=$(requests)
authorize web browser
browser
auth_wait
check "--oauth2-authorize=browser: authorised, told no config change is needed" \
	eval '[ $RC -eq 0 ] && has "$AOUT" "Account web is authorised" &&
	has "$AOUT" "No change to the configuration is needed" && has "$PAGE" "You can close this page"'
check "the authorization request: PKCE S256, loopback redirect, state, Google's offline access" \
	eval '[ "$(field $((before + 1)) query code_challenge_method)" = S256 ] &&
	field $((before + 1)) query redirect_uri | grep -qx "http://127\.0\.0\.1:[0-9]*/" &&
	[ "$(field $((before + 1)) query state | wc -c)" -eq 44 ] &&
	[ "$(field $((before + 1)) query access_type)" = offline ] &&
	[ "$(field $((before + 1)) query login_hint)" = web@example.org ] &&
	[ "$(field $((before + 1)) query scope)" = "https://mail.google.com/" ]'
check "the code exchange: the verifier matches the challenge (server checked), same redirect_uri" \
	eval '[ "$(field -1 form grant_type)" = authorization_code ] && [ "$(field -1 status x)" = 200 ] &&
	[ "$(field -1 form redirect_uri)" = "$(field $((before + 1)) query redirect_uri)" ] &&
	[ "$(field -1 form code_verifier | wc -c)" -eq 44 ]'
check "the stored refresh token has no configured source" \
	eval '[ "$(store_field web refresh_token)" != "<absent>" ] &&
	[ "$(store_field web refresh_token_source)" = "<absent>" ] &&
	[ "$(stat -c %a "$(store_of web)")" = 600 ]'
stored=$(store_field web refresh_token)
token web
check "--oauth2-token then finds the stored refresh token and refreshes with it" \
	eval '[ $RC -eq 0 ] && [ "$(field -1 form grant_type)" = refresh_token ] &&
	[ "$(field -1 form refresh_token)" = "$stored" ]'
script '{"responses": {"token": [{"status": 400, "json": {"error": "invalid_grant"}}]}}'
token web
check "a revoked stored refresh token: exit 77, run --oauth2-authorize again" \
	eval '[ $RC -eq 77 ] && has "$ERR" "HTTP 400 invalid_grant; the refresh token was revoked or has expired: run postbote --account web --oauth2-authorize"'

# A configured refresh token takes precedence: the user is told so.
conf precedence "oauth2_provider custom
oauth2_token_url $BASE/token
oauth2_auth_url $BASE/authorize
oauth2_client_id test-client
oauth2_trust_file $certs/ca.pem
oauth2_refresh_token rt-one"
authorize precedence
browser
auth_wait
check "authorising an account that configures a refresh token: a note says it takes precedence" \
	eval '[ $RC -eq 0 ] && has "$AOUT" "oauth2_refresh_token setting takes precedence over the stored token"'

script '{"authorize": {"error": "access_denied"}}'
web_conf denied
authorize denied browser
browser
auth_wait
check "browser flow refused by the user: exit 77, the error shown" \
	eval '[ $RC -eq 77 ] && has "$AERR" "the authorization server answered access_denied (The user said no.)" &&
	has "$PAGE" "the authorisation failed"'
script '{"authorize": {"state": "forged"}}'
web_conf forged
authorize forged browser
browser
auth_wait
check "browser flow with a foreign state: refused, nothing exchanged" \
	eval '[ $RC -eq 77 ] && has "$AERR" "a state that postbote did not send" &&
	[ "$(field -1 path x)" = /authorize ]'

# --- --oauth2-authorize: the device flow -----------------------------------------

script '{"device": {"style": "google", "interval": 1, "sequence": ["authorization_pending", "slow_down"]}}'
web_conf dev
before=$(requests)
authorize dev device
auth_wait
check "--oauth2-authorize=device: authorised after authorization_pending and slow_down" \
	eval '[ $RC -eq 0 ] && has "$AOUT" "https://127.0.0.1:$PORT/activate" && has "$AOUT" "WDJB-MJHT" &&
	has "$AOUT" "Account dev is authorised" && [ "$(requests)" -eq $((before + 4)) ]'
check "the device request and the polls: client id, scope, device_code grant" \
	eval '[ "$(field $((before + 1)) path x)" = /device ] &&
	[ "$(field $((before + 1)) form scope)" = "https://mail.google.com/" ] &&
	[ "$(field -1 form grant_type)" = urn:ietf:params:oauth:grant-type:device_code ] &&
	[ "$(field -1 form device_code)" = "$(field -2 form device_code)" ]'
gaps=$("$PY" - "$record" "$before" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2]):]
t = [r["time"] for r in rows]
print(" ".join("%.1f" % (b - a) for a, b in zip(t, t[1:])))
PY
)
check "polling honours the interval, and slow_down adds 5 seconds (gaps: $gaps)" \
	eval 'set -- $gaps 0 0 0; awk -v a=$1 -v b=$2 -v c=$3 "BEGIN { exit !(a >= 0.9 && b >= 0.9 && b < 3 && c >= 5.9) }"'
before=$(requests)
token dev
check "--oauth2-token after the device flow: the cached token" \
	eval '[ $RC -eq 0 ] && [ "$(requests)" -eq "$before" ] && grep -qx "at-[0-9]*" "$OUT"'

script '{"device": {"interval": 1, "sequence": ["access_denied"]}}'
web_conf devdenied
authorize devdenied device
auth_wait
check "device flow declined: exit 77" \
	eval '[ $RC -eq 77 ] && has "$AERR" "access_denied" && has "$AERR" "the authorisation was declined"'
script '{"device": {"interval": 1, "sequence": ["expired_token"]}}'
authorize devdenied device
auth_wait
check "device flow with an expired code: exit 77, run again" \
	eval '[ $RC -eq 77 ] && has "$AERR" "expired_token" && has "$AERR" "the code expired"'

# AUTO: no graphical session, so the device flow; with one, the browser;
# for Google always the browser (its device flow cannot grant the mail scope).
script '{"device": {"interval": 1}}'
web_conf auto microsoft
authorize auto
auth_wait
check "--oauth2-authorize without a flow and without DISPLAY: the device flow" \
	eval '[ $RC -eq 0 ] && has "$AOUT" "enter the code" && [ "$(field -2 path x)" = /device ] &&
	[ "$(field -2 form scope)" = "https://outlook.office.com/SMTP.Send offline_access" ]'
script '{}'
DISPLAY=:99 authorize auto
browser
auth_wait
check "--oauth2-authorize without a flow under DISPLAY: the browser flow" \
	eval '[ $RC -eq 0 ] && has "$AOUT" "open this address in a web browser" && has "$AOUT" "Account auto is authorised"'
web_conf autogoogle google
authorize autogoogle
browser
auth_wait
check "--oauth2-authorize without a flow for Google, without DISPLAY: the browser flow" \
	eval '[ $RC -eq 0 ] && has "$AOUT" "open this address in a web browser"'
conf nodevice "oauth2_provider custom
oauth2_token_url $BASE/token
oauth2_client_id test-client"
authorize nodevice device
auth_wait
check "the device flow without a device URL: exit 78, the keyword named" \
	eval '[ $RC -eq 78 ] && has "$AERR" "the device flow needs oauth2_device_url"'

# --- without libcurl ----------------------------------------------------------------

# libcurl is not linked but loaded for a request. With its file hidden (an
# empty file bound over it in a private mount namespace): a cached token
# still comes out, a refresh fails for good naming the library,
# --oauth2-authorize stops before anyone is sent to a browser, and
# --version still answers.
check "postbote does not link libcurl" eval '! ldd "$POSTBOTE" | grep -q libcurl'
curl_soname=$(sed -n 's/^#define CURL_SONAME "\(.*\)"$/\1/p' "$top_builddir/autoconf.h")
curl_file=$(ldconfig -p | awk -v n="$curl_soname" '$1 == n { print $NF; exit }')
: > "$E2E_TMP/empty"
# no_curl COMMAND...: COMMAND without libcurl; stdout in $OUT, stderr in
# $ERR (and collected), exit status in $RC.
no_curl() {
	RC=0
	unshare -m sh -c 'mount --make-rprivate / && mount --bind "$0" "$1" &&
		shift && exec "$@"' "$E2E_TMP/empty" "$curl_file" "$@" > "$OUT" 2> "$ERR" || RC=$?
	cat "$ERR" >> "$stderr_all"
}
if [ "$(id -u)" -ne 0 ] || [ -z "$curl_file" ] || ! unshare -m true 2>/dev/null; then
	skip "without libcurl" "needs root, unshare, and ldconfig to know ${curl_soname:-libcurl}"
else
	script '{"refresh_tokens": ["rt-one"]}'
	conf nocurl "$(base_conf 'oauth2_refresh_token rt-one')"
	before=$(requests)
	no_curl "$POSTBOTE" -C "$E2E_TMP/nocurl.conf" --oauth2-token
	check "without libcurl a refresh fails for good (exit 77), naming $curl_soname" \
		eval '[ $RC -eq 77 ] && [ ! -s "$OUT" ] && [ "$(requests)" -eq "$before" ] &&
		has "$ERR" "OAuth2 needs libcurl ($curl_soname): "'
	token nocurl
	nocurl_token=$(cat "$OUT")
	no_curl "$POSTBOTE" -C "$E2E_TMP/nocurl.conf" --oauth2-token
	check "without libcurl a cached token still comes out (libcurl is loaded only for a request)" \
		eval '[ $RC -eq 0 ] && [ "$(cat "$OUT")" = "$nocurl_token" ] && [ ! -s "$ERR" ] &&
		[ "$(requests)" -eq $((before + 1)) ]'
	web_conf nocurlweb microsoft
	no_curl "$POSTBOTE" -C "$E2E_TMP/nocurlweb.conf" --oauth2-authorize=device
	check "without libcurl --oauth2-authorize fails (exit 77) before showing anything" \
		eval '[ $RC -eq 77 ] && [ ! -s "$OUT" ] && [ "$(requests)" -eq $((before + 1)) ] &&
		has "$ERR" "account nocurlweb: OAuth2 needs libcurl ($curl_soname): "'
	no_curl "$POSTBOTE" --version
	check "without libcurl --version answers, libcurl missing" \
		eval '[ $RC -eq 0 ] && has "$OUT" ", libcurl missing" && has "$OUT" "SASL mechanisms:" &&
		has "$ERR" "OAuth2 will not work: libcurl ($curl_soname): "'
fi

# --- nothing secret on stderr ------------------------------------------------------

leaks=$(grep -oE 'rt-one|rt-two|rt-rot|rt-revoked|rt-leak|rt-issued-[0-9]+|cs-xyz|at-[0-9]+|code-[0-9]+|dc-[0-9]+' "$stderr_all" | sort -u)
check "no refresh token, client secret, access token, code or device code on stderr" \
	eval '[ -z "$leaks" ]'

finish
