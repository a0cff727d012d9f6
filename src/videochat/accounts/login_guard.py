"""Password-guessing limits that an attacker cannot turn against the account's owner.

A lock on the account alone (N failures, then nobody may log in) lets anyone lock any
user out. Following OWASP's guidance (Authentication and Credential Stuffing cheat
sheets: lock per account *and* source, and trust sources the owner used before, as
its "device cookies" do), three counters are kept per window:

- tries on one account from one address: past ``login_attempts`` that pair waits (the
  lock); a successful login clears it, so an owner's typos never add up;
- tries from one address on any account (``login_attempts_per_ip``): spraying one
  password over many accounts;
- tries on one account from addresses that never logged in to it
  (``login_attempts_per_account``): bounds guesses over rotating addresses, while an
  address the owner logged in from (or registered from) stays exempt for
  ``TRUST_SECONDS``. The owner's right password from there works during an attack.

The account key is the lower-cased name, known or not: the answers do not tell which
names exist.
"""

from __future__ import annotations

from videochat.security.ratelimit import Limiter

# How long an address that logged in to an account stays exempt from its account limit.
TRUST_SECONDS = 30 * 24 * 3600
DETAIL = "Too many login attempts"


def _trust_key(account: str, address: str) -> str:
    return f"login-trusted/{account}/{address}"


async def check_attempt(limiter: Limiter, *, username: str, address: str) -> None:
    """Count a login attempt before any hashing; ``TooManyRequests`` past a limit."""
    account = username.lower()
    await limiter.enforce(limiter.login_per_ip, "login-ip", address, detail=DETAIL)
    await limiter.enforce(limiter.login_per_pair, "login-pair", account, address, detail=DETAIL)
    if not await limiter.remembers(_trust_key(account, address)):
        await limiter.enforce(limiter.login_per_account, "login-account", account, detail=DETAIL)


async def succeeded(limiter: Limiter, *, username: str, address: str) -> None:
    """The password was right: clear this address's failures, trust it for this account."""
    account = username.lower()
    await limiter.clear(limiter.login_per_pair, "login-pair", account, address)
    await limiter.remember(_trust_key(account, address), seconds=TRUST_SECONDS)
