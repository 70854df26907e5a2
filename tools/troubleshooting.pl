#!/usr/bin/env perl
# docs/TROUBLESHOOTING.md against the messages the code can print.
#
#   perl tools/troubleshooting.pl --check [SRC]   exit 1 listing every error message in src/ that the
#                                                 page lacks, and every page entry no code prints
#   perl tools/troubleshooting.pl --write [SRC]   rewrites the page: stale entries dropped, new
#                                                 messages added to the section of the code that
#                                                 prints them (with that section's usual advice, to
#                                                 be refined by hand), rows sorted; advice kept
#
# Messages are the format strings of every lt::fail(...) and LT_CHECK(cond, ...) under src/, and
# the validator messages of src/cli/options.cpp, with each {} placeholder shown as "…".
# tests/docs/troubleshooting_test.sh runs --check in CI.
use strict;
use warnings;
use utf8;
use File::Find;
binmode STDOUT, ':utf8';
binmode STDERR, ':utf8';

my $mode = shift @ARGV // '';
die "usage: troubleshooting.pl --check|--write [SRC]\n" unless $mode eq '--check' || $mode eq '--write';
my $root = shift @ARGV // '.';
my $doc = "$root/docs/TROUBLESHOOTING.md";
my $ELL = "\x{2026}";

# --- messages in the code ----------------------------------------------------------------------

# The string literals at the start of $text (adjacent literals joined), or undef.
sub literals {
  my ($text) = @_;
  my $out;
  while ($text =~ /\G\s*"((?:[^"\\]|\\.)*)"/gc) { $out .= $1; }
  return $out;
}

# Skips one macro argument (to the next top-level comma); returns the rest after it.
sub after_first_arg {
  my ($text) = @_;
  my ($depth, $i, $n) = (0, 0, length $text);
  while ($i < $n) {
    my $c = substr($text, $i, 1);
    if ($c eq '"' || $c eq "'") {
      my $q = $c;
      for ($i++; $i < $n && substr($text, $i, 1) ne $q; $i++) { $i++ if substr($text, $i, 1) eq '\\'; }
    } elsif ($c =~ /[([{]/) {
      $depth++;
    } elsif ($c =~ /[)\]}]/) {
      return undef if $depth == 0;
      $depth--;
    } elsif ($c eq ',' && $depth == 0) {
      return substr($text, $i + 1);
    }
    $i++;
  }
  return undef;
}

sub normalise {
  my ($m) = @_;
  $m =~ s/\\n\s*/ /g;
  $m =~ s/\\"/"/g;
  $m =~ s/\\\\/\\/g;
  $m =~ s/(\{\{|\}\}|\{[^{}]*\})/$1 eq '{{' ? '{' : $1 eq '}}' ? '}' : $ELL/ge;
  $m =~ s/\s+$//;
  return $m;
}

my %code;  # message -> first source file that prints it
find({no_chdir => 1, wanted => sub {
  return unless /\.(cpp|h)$/;
  my $file = $File::Find::name;
  open(my $fh, '<:utf8', $file) or die "$file: $!\n";
  local $/;
  my $text = <$fh>;
  close $fh;
  (my $rel = $file) =~ s{^\Q$root\E/}{};
  my @found;
  while ($text =~ /(?<![\w.>])(?:lt::)?fail\(/g) { push @found, literals(substr($text, pos($text))); }
  while ($text =~ /LT_CHECK\(/g) {
    my $rest = after_first_arg(substr($text, pos($text)));
    push @found, literals($rest) if defined $rest;
  }
  if ($rel eq 'src/cli/options.cpp') {  # validator messages, returned to CLI11
    while ($text =~ /return fmt::format\(/g) { push @found, literals(substr($text, pos($text))); }
  }
  for my $m (@found) {
    next unless defined $m;
    my $n = normalise($m);
    next unless $n =~ /[A-Za-z]{2}/;  # a format helper, not a message
    $code{$n} //= $rel;
  }
}}, "$root/src");

# --- the page ----------------------------------------------------------------------------------

open(my $in, '<:utf8', $doc) or die "$doc: $!\n";
my @lines = <$in>;
close $in;

sub cell_message {  # the message in a table's first cell: `...` or `` ... ``
  my ($cell) = @_;
  $cell =~ s/^\s+|\s+$//g;
  return undef unless $cell =~ /^(`+)\s?(.*?)\s?\1$/;
  (my $m = $2) =~ s/\\\|/|/g;
  return $m;
}
sub render {
  my ($m) = @_;
  (my $t = $m) =~ s/\|/\\|/g;
  return $t =~ /`/ ? "`` $t ``" : "`$t`";
}

# Sections: header line index, rows (message -> advice), internal list.
my (@sections, %doc_msgs);
my $cur;
for my $i (0 .. $#lines) {
  my $l = $lines[$i];
  if ($l =~ /^## (.*)$/) {
    $cur = {title => $1, rows => {}};
    $cur = undef if $1 =~ /^Before reading/;  # symptoms, not messages
    push @sections, $cur if $cur;
    next;
  }
  next unless $cur;
  if ($l =~ /^\|(.*?)\|(.*)\|\s*$/ && $l !~ /^\|---/) {
    my $m = cell_message($1);
    next unless defined $m;
    (my $advice = $2) =~ s/^\s+|\s+$//g;
    $cur->{rows}{$m} = $advice;
    $doc_msgs{$m} = $cur->{title};
  } elsif ($cur->{title} eq 'Internal errors' && $l =~ /^These guard/) {
    while ($l =~ /`([^`]+)`/g) {
      my $m = $1;
      next if $m eq '';
      $cur->{internal}{$m} = 1;
      $doc_msgs{$m} = $cur->{title};
    }
  }
}

my @missing = sort grep { !exists $doc_msgs{$_} } keys %code;
my @stale = sort grep { !exists $code{$_} } keys %doc_msgs;

if ($mode eq '--check') {
  print "docs/TROUBLESHOOTING.md lacks (printed by the code):\n", map({ "  $_   [$code{$_}]\n" } @missing) if @missing;
  print "docs/TROUBLESHOOTING.md lists messages no code prints:\n", map({ "  $_\n" } @stale) if @stale;
  if (@missing || @stale) {
    print "fix: perl tools/troubleshooting.pl --write, then refine the advice of new rows by hand\n";
    exit 1;
  }
  printf "ok: docs/TROUBLESHOOTING.md lists all %d messages the code can print\n", scalar keys %code;
  exit 0;
}

# --- --write -----------------------------------------------------------------------------------

# Where a new message goes: the first rule whose pattern matches the file that prints it.
my @rules = (
  [qr{src/train/run_config}, 'Run configuration'],
  [qr{src/model/(config|layout)}, 'Model architecture'],
  [qr{src/(ckpt/(s3|remote|checkpoint_sync))}, 'Remote checkpoints and S3'],
  [qr{src/(cli/cmd_(eval|generate)|train/evaluate|model/infer)}, '`eval` and `generate`'],
  [qr{src/(ckpt/|cli/cmd_convert)}, 'Weights and checkpoints'],
  [qr{src/(data/|cli/cmd_data)}, 'Data'],
  [qr{src/(launch/|cli/cmd_launch)}, '`launch`'],
  [qr{src/(parallel/|cli/cmd_(healthcheck|plan))}, '`healthcheck`'],
  [qr{src/(cli/|core/env)}, 'Command line and environment'],
  [qr{src/train/}, 'Training'],
  [qr{.}, 'Any command'],
);
sub section_for {
  my ($file) = @_;
  for my $r (@rules) {
    next unless $file =~ $r->[0];
    for my $s (@sections) { return $s if index($s->{title}, $r->[1]) == 0; }
  }
  for my $s (@sections) { return $s if index($s->{title}, 'Any command') == 0; }
  die "no section for $file\n";
}
sub usual_advice {
  my ($s) = @_;
  my %n;
  $n{$_}++ for values %{$s->{rows}};
  my ($best) = sort { $n{$b} <=> $n{$a} || $a cmp $b } keys %n;
  return $best // 'Fix the named option, key, variable or file as the message says.';
}
for my $s (@sections) {
  delete $s->{rows}{$_} for grep { !exists $code{$_} } keys %{$s->{rows}};
  delete $s->{internal}{$_} for grep { !exists $code{$_} } keys %{$s->{internal} // {}};
}
for my $m (@missing) {
  my $s = section_for($code{$m});
  $s->{rows}{$m} = usual_advice($s);
}
my @out;
my $title;
my $in_table = 0;
for my $l (@lines) {
  if ($l =~ /^## (.*)$/) { $title = $1; }
  my ($s) = grep { defined $title && $_->{title} eq $title } @sections;
  if ($s && %{$s->{rows}} && $l =~ /^\|/) {
    next if $in_table++;  # the whole table is written at its first line
    push @out, "| message (… = a name or number from your input) | what to do |\n", "|---|---|\n";
    push @out, map { "| " . render($_) . " | $s->{rows}{$_} |\n" } sort keys %{$s->{rows}};
    next;
  }
  $in_table = 0 if $l !~ /^\|/;
  if ($s && $s->{internal} && $l =~ /^These guard/) {
    my $list = join('; ', map { "`$_`" } sort keys %{$s->{internal}});
    $l =~ s/(please report it with the command line and the log: ).*$/$1$list./;
  }
  push @out, $l;
}
open(my $o, '>:utf8', $doc) or die "$doc: $!\n";
print $o @out;
close $o;
printf "docs/TROUBLESHOOTING.md: %d messages added, %d stale entries removed\n", scalar @missing, scalar @stale;
