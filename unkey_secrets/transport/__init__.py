"""One transport policy for every HTTP client the package builds or is given.

Three clients carry our requests: httpx (Unkey), requests under hvac (Vault) and botocore
(Secrets Manager). Each is held to the same rules, whether we built it or the caller did:

* TLS, or plain http to a loopback host only;
* no redirect is ever followed (a redirect would replay a token and a body elsewhere);
* no proxy for a plain-http target (the traffic would leave the machine in clear); proxies for
  https targets are resolved from the standard variables once, when the client is built;
* a **deadline per request** (connect, send and the whole answer, however slowly it trickles),
  not per socket read;
* a **byte budget per answer**, counted after decompression.

A breach of the deadline or the budget is a lost answer: the request may have acted, and the
flows settle it as they settle a dropped connection. The rules live in :mod:`.policy`; each
client's mechanics in a module of its own.
"""

from .policy import (
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerTooLargeError,
    Budget,
    Deadline,
    DeadlineExceededError,
    TransportBreachError,
    current_deadline,
    deadline,
    proxy_for,
)

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "AnswerTooLargeError",
    "Budget",
    "Deadline",
    "DeadlineExceededError",
    "TransportBreachError",
    "current_deadline",
    "deadline",
    "proxy_for",
]
