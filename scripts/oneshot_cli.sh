#!/bin/bash
# One-shot CLI questions on the demo database (its schema state already on disk), generation cache off.
# usage: scripts/oneshot_cli.sh [DIR [OPTION...]]   (DIR: the checkout to run, default this one; OPTIONs go to every
# `ask`, e.g. --backend llama.cpp; run it for two checkouts or two option sets alternately to compare them on one
# machine)
cd "${1:-$(dirname "$0")/..}"
shift || true
export NL2SQL_GENERATION_CACHE=off
python -m jupyter_nl2sql ask "$@" "How many customers are there?" >/dev/null 2>&1   # makes sure the state exists
for q in "Which city has the most customers?" \
         "List the five most expensive products." \
         "How many orders were placed in each month of 2024?" \
         "What is the total revenue per product category?" \
         "Which customers have never placed an order?" \
         "How many employees work in each department?" \
         "What is the average unit price of products in each category?" \
         "Which employee handled the most orders?"; do
  s=$(date +%s.%N); out=$(python -m jupyter_nl2sql ask "$@" "$q" 2>/dev/null); e=$(date +%s.%N)
  printf "%.2f s | %s | %s\n" "$(echo "$e - $s" | bc)" "$q" "$(echo "$out" | grep -o 'generate [^·]*· [^·]*' | head -1)"
done
