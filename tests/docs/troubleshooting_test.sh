# docs/TROUBLESHOOTING.md lists exactly the error messages the code can print (every lt::fail /
# LT_CHECK format string under src/, and the command-line validators): a new message without an
# entry, or an entry for a message that no longer exists, fails. tools/troubleshooting.pl --write
# regenerates the tables (keeping the advice written by hand).
# Usage: bash troubleshooting_test.sh <llamatrain> <source-dir>
exec perl "$2/tools/troubleshooting.pl" --check "$2"
