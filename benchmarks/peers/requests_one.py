#!/usr/bin/env python3
"""The start-up baseline: the plain requests script a user would write for one file.

    python benchmarks/peers/requests_one.py -o OUT URL

``requests.get(url)``, then the body is written to OUT/<the URL's file name>.
Deliberately minimal (no argparse, no helpers): the *startup* scenario measures
what a whole process costs for one tiny file. Exit status 1 on an HTTP error.
"""

import os
import sys

import requests

out, url = sys.argv[2], sys.argv[3]  # -o OUT URL
resp = requests.get(url, timeout=60)
resp.raise_for_status()
with open(os.path.join(out, url.rsplit("/", 1)[-1]), "wb") as fh:
    fh.write(resp.content)
