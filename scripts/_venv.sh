# Sourced by scripts/run and scripts/test: make .venv and keep it in step
# with pyproject.toml; install web_client's npm packages when it has any.
# Expects to run from the repo root.

ensure_venv() {
    if [[ ! -x .venv/bin/python ]]; then
        local py
        py="$(command -v python3.11 || command -v python3 || true)"
        if [[ -z "$py" ]]; then
            echo "sidecoach: python3.11 (or python3) is required" >&2
            return 1
        fi
        echo "sidecoach: creating .venv with $py" >&2
        "$py" -m venv .venv
    fi
    local stamp=.venv/.sidecoach-installed
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        echo "sidecoach: installing Python packages (pyproject.toml changed)" >&2
        .venv/bin/python -m pip install --quiet -e '.[dev]'
        printf '%s\n' "$want" >"$stamp"
    fi
}

ensure_npm() {
    if [[ -f web_client/package.json ]]; then
        if command -v npm >/dev/null 2>&1; then
            (cd web_client && npm install --silent --no-audit --no-fund)
        else
            echo "sidecoach: npm not found; skipping web_client npm install" >&2
        fi
    fi
}
