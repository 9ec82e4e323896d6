#!/usr/bin/env bash
# A scripted run of the demo, as a person uses it: `cargo run --release --example demo`, the
# time until the first page is served, sign in with curl through Ory's real browser flow (303s,
# CSRF cookie and token) via the proxy, the signed-in page, sign out, then Ctrl-C (SIGINT).
#
#   examples/demo_smoke.sh     (builds the release demo first, untimed)
#
# PORT picks the proxy's port (default 4000). Exits non-zero at the first surprise.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${PORT:-4000}
url="http://localhost:$port"
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
jar="$work/cookies"
curl_() { curl -sS --max-time 10 -c "$jar" -b "$jar" "$@"; }
fail() {
    echo "FAIL: $*" >&2
    echo "--- demo output:" >&2
    cat "$work/out" >&2
    exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Not timed: the measure is from `cargo run` of an already built demo to its first page.
cargo build --quiet --release --example demo

start=$(now_ms)
# On Unix `cargo run` execs the program, so $pid is the demo itself.
cargo run --quiet --release --example demo -- --port "$port" >"$work/out" 2>&1 &
pid=$!
until curl -sf -o /dev/null "$url/"; do
    kill -0 "$pid" 2>/dev/null || fail "the demo exited"
    [ $(($(now_ms) - start)) -lt 60000 ] || fail "no page within 60 s"
    sleep 0.005
done
echo "first page served $(($(now_ms) - start)) ms after \`cargo run --release --example demo\`"

curl_ "$url/" | grep -q 'id="status">Signed out' || fail "the first page is not signed out"

# Ory's login flow through the proxy: a 303 to the emulator's form under /.ory/ui/login.
form_url=$(curl_ -o /dev/null -w '%{redirect_url}' \
    "$url/.ory/self-service/login/browser?return_to=$url/")
case "$form_url" in "$url/.ory/ui/login?flow="*) ;; *) fail "login flow went to $form_url" ;; esac
form=$(curl_ "$form_url")
action=$(sed -n 's/.*<form id="flow" action="\([^"]*\)".*/\1/p' <<<"$form")
csrf=$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' <<<"$form")
[ -n "$action" ] && [ -n "$csrf" ] || fail "no form in: $form"
back=$(curl_ -o /dev/null -w '%{redirect_url}' \
    --data-urlencode "csrf_token=$csrf" --data-urlencode method=password \
    --data-urlencode identifier=demo@example.org \
    --data-urlencode password=demo-password-123 "$action")
[ "$back" = "$url/" ] || fail "login returned to $back"

page=$(curl_ "$url/")
grep -q 'Signed in as <strong id="email">demo@example.org</strong>' <<<"$page" ||
    fail "not signed in: $page"
echo "signed-in page: $(grep -o 'Signed in as <strong id="email">[^<]*' <<<"$page" | sed 's/<[^>]*>//')"
grep -o '<td id="claim-[a-z]*">[^<]*' <<<"$page" | sed 's/<td id="claim-\([a-z]*\)">/  \1: /'

logout=$(sed -n 's/.*id="logout" href="\([^"]*\)".*/\1/p' <<<"$page" | sed 's/&amp;/\&/g')
[ -n "$logout" ] || fail "no logout link"
curl_ -o /dev/null "$logout"
curl_ "$url/" | grep -q 'id="status">Signed out' || fail "still signed in after logout"
echo "signed out again"

stop=$(now_ms)
kill -INT "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || fail "Ctrl-C: exit status $status"
echo "Ctrl-C: stopped in $(($(now_ms) - stop)) ms, exit status 0"
