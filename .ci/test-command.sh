# The test step of CI: the test command comes from README.md, so it is
# checked before it runs. An edit of the README that appends `|| true`,
# skips tests or filters them would otherwise land green. Source this file;
# it defines functions only. `.ci/test-command-selftest` exercises them.

# Prints the one command line README.md ($1) holds between
# <!-- test-command --> and <!-- /test-command -->; fails when there is not
# exactly one.
test_command_from_readme() {
  local command
  command=$(awk '
    /<!-- test-command -->/  { inside = 1; next }
    /<!-- \/test-command -->/ { inside = 0 }
    inside && !/^[[:space:]]*```/ && NF { print }
  ' "$1")
  if [ -z "$command" ] || [ "$(printf '%s\n' "$command" | wc -l)" -ne 1 ]; then
    echo "$1 must hold exactly one command line between <!-- test-command --> and <!-- /test-command -->; found:" >&2
    printf '%s\n' "$command" >&2
    return 1
  fi
  printf '%s\n' "$command"
}

# Checks that $1 is a plain `cargo test` whose flags are all on a short
# allow-list, and sets the array TEST_COMMAND_WORDS to its words, to be run
# as they are (never through a shell). The allowed flags choose what is
# built and how; none of them selects fewer tests than the whole workspace
# has, except `-p`, which CI's test count then shows. Refused: anything
# else, so test-name filters, `--skip`, `--ignored` and whatever follows
# `--`, and any character a shell would read (`|&;$<>` backquote, quotes,
# parentheses, `=` of an environment assignment).
check_test_command() {
  local line=$1 allowed_characters='^[A-Za-z0-9 ._-]+$' package='^[A-Za-z0-9_][A-Za-z0-9_-]*$'
  local -a words
  refuse() {
    printf 'refused test command %s: %s\n' "'$line'" "$1" >&2
  }
  [[ $line =~ $allowed_characters ]] \
    || { refuse "only letters, digits, spaces and . _ - may appear in it"; return 1; }
  read -r -a words <<<"$line"
  [ "${#words[@]}" -ge 2 ] && [ "${words[0]}" = cargo ] && [ "${words[1]}" = test ] \
    || { refuse "it must start with 'cargo test'"; return 1; }
  local i=2
  while [ "$i" -lt "${#words[@]}" ]; do
    case "${words[i]}" in
      --workspace | --locked | --all-targets | --release | --no-fail-fast) ;;
      -p | --package)
        i=$((i + 1))
        [ "$i" -lt "${#words[@]}" ] && [[ ${words[i]} =~ $package ]] \
          || { refuse "${words[i - 1]} needs a package name"; return 1; }
        ;;
      *)
        refuse "'${words[i]}' is not one of --workspace, --locked, --all-targets, --release, --no-fail-fast, -p NAME"
        return 1
        ;;
    esac
    i=$((i + 1))
  done
  TEST_COMMAND_WORDS=("${words[@]}")
}

# Reads libtest's output in the file $1 and prints how many tests ran, in
# how many test binaries. Fails when a binary reported a failed test, when
# a test was filtered out (nothing in an allowed command filters) or
# ignored (a skipped test must not pass for a tested one), when no test ran
# at all, or when cargo reported an error.
count_test_results() {
  awk '
    /^test result: / {
      binaries++
      if (match($0, /^test result: ok\. [0-9]+ passed; 0 failed; [0-9]+ ignored; [0-9]+ measured; [0-9]+ filtered out;/)) {
        split($0, field, /[ .;]+/)
        # field: test result: ok N passed 0 failed I ignored M measured F filtered out
        passed += field[4]; ignored += field[8]; filtered += field[12]
      } else {
        bad++
        print "a test binary did not pass: " $0 > "/dev/stderr"
      }
      next
    }
    /^test .* \.\.\. FAILED$/ { bad++; print "failed: " $0 > "/dev/stderr"; next }
    /^error(\[|:)/           { bad++; print "cargo: " $0 > "/dev/stderr"; next }
    END {
      printf "tests run: %d passed in %d test binaries (%d ignored, %d filtered out)\n", passed, binaries, ignored, filtered
      if (bad) exit 1
      if (passed == 0) { print "no test ran" > "/dev/stderr"; exit 1 }
      if (filtered) { print filtered " tests were filtered out" > "/dev/stderr"; exit 1 }
      if (ignored) { print ignored " tests were ignored: CI runs every test" > "/dev/stderr"; exit 1 }
    }
  ' "$1"
}

# Runs TEST_COMMAND_WORDS with CI=true, keeping its output in the file $1
# as well, then prints the test count. Fails when the command or the count
# fails.
run_test_command() {
  local status=0
  CI=true "${TEST_COMMAND_WORDS[@]}" 2>&1 | tee "$1" || status=$?
  count_test_results "$1" || status=1
  return "$status"
}
