#!/usr/bin/env bash
# Print the path of a working Python 3.13 (the version Azure runs this app on), or fail saying
# what to install. pyenv's shims exist for versions that are installed but not selected, and
# then fail when run, so each candidate is run before it is chosen.
set -u
candidates=()
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$' | sort -rV); do
    candidates+=("$(pyenv prefix "$v")/bin/python3.13")
  done
fi
candidates+=(python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13)
for py in "${candidates[@]}"; do
  if "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
    command -v "$py"
    exit 0
  fi
done
cat >&2 <<MSG
Python 3.13 is required (the version the app runs on in Azure) and none was found.
Install it, e.g. 'pyenv install 3.13' or your distribution's python3.13 package, then run make
again, or name one: make PYTHON_BIN=/path/to/python3.13 ...
MSG
exit 1
