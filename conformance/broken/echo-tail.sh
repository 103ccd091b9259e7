#!/usr/bin/env bash
# BROKEN ON PURPOSE: the common `|| [[ -n $line ]]` idiom echoes an unterminated tail as a message.
exec 3<"$1" 4>"$2"
while IFS= read -r line <&3 || [[ -n $line ]]; do
  printf '%s\n' "$line" >&4
done
