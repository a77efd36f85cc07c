# bench/pki.sh: sourced by the benchmarks that move a VM through the TLS agent.
# The TLS agent's certificates (docs/remote.md, "The TLS agent"), made by make_pki: a CA, the agent's
# for B's address in PKI/b, the tool's (named tool.qu-bench) in PKI/a.
make_pki() { # PKI B_IP
	local d=$1 side kind cn san
	mkdir -p "$d/ca" "$d/a" "$d/b" && chmod 700 "$d" || return 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=qu-bench-ca \
		-keyout "$d/ca/ca-key.pem" -out "$d/ca/ca-cert.pem" 2>/dev/null || return 1
	for side in "a client tool.qu-bench DNS:tool.qu-bench" "b server agent.qu-bench IP:$2"; do
		set -- $side
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$3" -keyout "$d/$1/$2-key.pem" 2>/dev/null |
			openssl x509 -req -CA "$d/ca/ca-cert.pem" -CAkey "$d/ca/ca-key.pem" -set_serial "0x$(openssl rand -hex 8)" -days 2 \
				-extfile <(printf 'subjectAltName=%s\n' "$4") -out "$d/$1/$2-cert.pem" 2>/dev/null || return 1
		chmod 600 "$d/$1/$2-key.pem" && cp "$d/ca/ca-cert.pem" "$d/$1/"
	done
}
