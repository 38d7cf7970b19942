# Shared by the scripts: install what is missing, as root, on Debian.
# Sourced, not run.

# ensure_packages PKG... installs the Debian packages that are not installed yet.
ensure_packages() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing Debian packages: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "need root to install ${missing[*]}" >&2
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# Never let a package's service start on the host: the project runs its
	# own daemons, scoped to namespaces.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	rm -f /usr/sbin/policy-rc.d
}

# ensure_go makes a Go toolchain new enough for go.mod available on PATH.
ensure_go() {
	export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
	if ! command -v go >/dev/null 2>&1; then
		# Debian's Go is older than go.mod wants; any Go >= 1.21 fetches the
		# right toolchain from the module proxy by itself (GOTOOLCHAIN=auto).
		ensure_packages golang-go ca-certificates
	fi
	export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
	go version >/dev/null
	go mod download
}
