#!/usr/bin/env bash
# BROKEN ON PURPOSE: passes the message to printf as its format, so % and \ are interpreted.
exec 3<"$1" 4>"$2"
while IFS= read -r line <&3; do
  # shellcheck disable=SC2059
  printf "$line\n" >&4
done
