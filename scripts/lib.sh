# Shared steps of scripts/install-and-run and scripts/test (sourced, not run).

# install_debian_packages PKG...: apt-get install whatever is not installed yet.
install_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# make_venv EXTRAS: create .venv (once) and install the project (editable) with
# EXTRAS, e.g. "[test]". pip's chatter goes to .venv/pip.log, shown on failure.
make_venv() {
    [ -x .venv/bin/python ] || python3 -m venv .venv
    if ! { .venv/bin/python -m pip install --upgrade pip &&
           .venv/bin/python -m pip install -e ".$1"; } > .venv/pip.log 2>&1; then
        cat .venv/pip.log
        echo "installing the project into .venv failed (log above)" >&2
        return 1
    fi
}
