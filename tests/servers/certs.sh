#!/bin/sh
# certs.sh DIR - create a throwaway test PKI for the loopback mail servers.
#
# Files written to DIR:
#   ca.pem, ca-key.pem                 test CA (trusted by the tests)
#   server.pem, server-key.pem         localhost, 127.0.0.1, ::1; signed by ca
#   wrongname.pem, wrongname-key.pem   only "wrong.example"; signed by ca
#   other-ca.pem, other-ca-key.pem     a second, untrusted CA
#   untrusted.pem, untrusted-key.pem   localhost, 127.0.0.1, ::1; signed by other-ca
#   client.pem, client-key.pem         TLS client certificate "tester@example.org"; signed by ca
#
# Certificates are valid from yesterday to two days from now. A set younger
# than a day is reused as it is; an older or incomplete one is replaced, so
# a reused DIR never hands out expired certificates.
# Keys are ECDSA P-256, which makes the whole run take well under a second.

set -eu

usage() {
	echo "usage: $0 DIR" >&2
	exit 64
}

[ $# -eq 1 ] || usage
dir=$1

all_files="ca.pem ca-key.pem server.pem server-key.pem wrongname.pem
wrongname-key.pem other-ca.pem other-ca-key.pem untrusted.pem
untrusted-key.pem client.pem client-key.pem"

command -v certtool >/dev/null 2>&1 || {
	echo "$0: certtool not found (install gnutls-bin)" >&2
	exit 69
}

mkdir -p "$dir"

# Reuse a complete set created less than a day ago.
complete=yes
for f in $all_files; do
	[ -s "$dir/$f" ] || complete=no
done
if [ "$complete" = yes ] && [ -n "$(find "$dir/ca.pem" -mtime -1)" ]; then
	exit 0
fi

# Build in a private directory and move the finished files into place, so a
# half-written set is never mistaken for a complete one.
work=$(mktemp -d "$dir/.certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM

not_before=$(date -u -d '1 day ago' '+%Y-%m-%d %H:%M:%S')
not_after=$(date -u -d '2 days' '+%Y-%m-%d %H:%M:%S')

new_key() {
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
		--no-text --outfile="$work/$1" 2>/dev/null
}

# write_template FILE CN [extra template lines...]
write_template() {
	template=$1
	cn=$2
	shift 2
	{
		echo "organization = \"postbote test suite\""
		echo "cn = \"$cn\""
		echo "activation_date = \"$not_before\""
		echo "expiration_date = \"$not_after\""
		for line in "$@"; do
			echo "$line"
		done
	} >"$work/$template"
}

# make_ca NAME CN
make_ca() {
	new_key "$1-key.pem"
	write_template "$1.tmpl" "$2" ca cert_signing_key crl_signing_key
	certtool --generate-self-signed --no-text \
		--load-privkey="$work/$1-key.pem" \
		--template="$work/$1.tmpl" \
		--outfile="$work/$1.pem" 2>/dev/null
}

# make_leaf NAME CA PURPOSE CN [extra template lines...]
make_leaf() {
	name=$1
	ca=$2
	purpose=$3
	shift 3
	new_key "$name-key.pem"
	write_template "$name.tmpl" "$@" "$purpose" signing_key
	certtool --generate-certificate --no-text \
		--load-privkey="$work/$name-key.pem" \
		--load-ca-certificate="$work/$ca.pem" \
		--load-ca-privkey="$work/$ca-key.pem" \
		--template="$work/$name.tmpl" \
		--outfile="$work/$name.pem" 2>/dev/null
}

make_ca ca "postbote test CA"
make_server() {
	name=$1
	ca=$2
	shift 2
	make_leaf "$name" "$ca" tls_www_server "$@"
}

make_server server ca localhost \
	'dns_name = "localhost"' 'ip_address = "127.0.0.1"' 'ip_address = "::1"'
make_server wrongname ca wrong.example 'dns_name = "wrong.example"'
make_leaf client ca tls_www_client tester@example.org \
	'email = "tester@example.org"'
make_ca other-ca "postbote untrusted CA"
make_server untrusted other-ca localhost \
	'dns_name = "localhost"' 'ip_address = "127.0.0.1"' 'ip_address = "::1"'

chmod 600 "$work"/*-key.pem
chmod 644 "$work"/ca.pem "$work"/server.pem "$work"/wrongname.pem \
	"$work"/other-ca.pem "$work"/untrusted.pem "$work"/client.pem
# ca.pem goes last: its presence and age mark a complete set.
for f in $all_files; do
	[ "$f" = ca.pem ] || mv -f "$work/$f" "$dir/$f"
done
mv -f "$work/ca.pem" "$dir/ca.pem"
