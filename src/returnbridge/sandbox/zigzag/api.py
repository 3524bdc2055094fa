"""A ZigZag API emulator: token endpoint with expiring JWTs, ``PUT ExchangeStocks/Update``
and ``PUT NonReturnableProducts`` with the documented validation (reference §2, §5.4-5.5).

Inspect state from Python (``stock``, ``non_returnable``, ``requests``) and inject faults
(``fail_next``, ``expire_tokens``).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from returnbridge.sandbox.threaded import ThreadedServer

MESSAGE_KEYS = frozenset({
    "PleaseContactOurCustomerService", "ThisItemCanNotBeReturned",
    "PleaseContactUsToCreateReturn", "ProductIsNonReturnable",
    "PleaseContactOurCustomerServiceTeam", "ProductIsNonRetunable",
    "GiftCardCannotBeReturned", "ThisProductIsNotReturnable",
})
MAX_QUANTITY = 2_147_483_647


@dataclass
class ApiCall:
    method: str
    path: str
    status_code: int
    idempotency_key: str
    items: int
    body: Any


@dataclass
class _Fault:
    status_code: int
    retry_after: str | None


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class ZigZagApiSandbox:
    username: str = "sandbox-user"
    password: str = "sandbox-password"
    retailer_code: str = "GL123"
    known_skus: set[str] = field(default_factory=set)
    dc_codes: set[str] = field(default_factory=lambda: {"GB0064"})
    token_lifetime: int = 1800
    token_path: str = "/Return/api/v1/Account/Token"
    stocks_path: str = "/Return/api/v1/ExchangeStocks/Update"
    non_returnable_path: str = "/Return/api/v1/NonReturnableProducts"
    stock: dict[tuple[str, str], int] = field(default_factory=dict)
    non_returnable: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[ApiCall] = field(default_factory=list)
    tokens_issued: int = 0
    # SKUs refused with a given message even though they exist (e.g. blocked for exchanges)
    refused_skus: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadedServer | None = None
        self.app = self._make_app()

    # -- Python API --------------------------------------------------------------------

    def start(self, port: int | None = None) -> ZigZagApiSandbox:
        self._server = ThreadedServer(self.app, port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the sandbox first"
        return self._server.base_url

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """A ``[zigzag]`` section (as a dict) pointing returnbridge at this sandbox."""
        return {"base_url": self.base_url, "username": self.username,
                "password": self.password, "retailer_code": self.retailer_code,
                "token_path": self.token_path, "exchange_stocks_path": self.stocks_path,
                "non_returnable_path": self.non_returnable_path, **overrides}

    def fail_next(self, status_code: int = 503, times: int = 1,
                  retry_after: str | None = None) -> None:
        """The next ``times`` PUT requests answer ``status_code`` (before any validation)."""
        with self._lock:
            self._faults.extend(_Fault(status_code, retry_after) for _ in range(times))

    def refuse_sku(self, sku: str, message: str = "is not enabled for live exchanges") -> None:
        """ZigZag refuses the whole batch containing ``sku`` from now on (as it does for an
        unknown SKU), with ``message``; ``accept_sku`` undoes it."""
        with self._lock:
            self.refused_skus[sku] = message

    def accept_sku(self, sku: str) -> None:
        with self._lock:
            self.refused_skus.pop(sku, None)
            self.known_skus.add(sku)

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens = {t: 0.0 for t in self._tokens}

    def puts(self, path_suffix: str = "") -> list[ApiCall]:
        return [c for c in self.requests if c.method == "PUT" and c.path.endswith(path_suffix)]

    # -- HTTP ----------------------------------------------------------------------------

    def _issue(self) -> str:
        self.tokens_issued += 1
        exp = int(time.time()) + self.token_lifetime
        token = ".".join((_b64({"alg": "none", "typ": "JWT"}),
                          _b64({"sub": self.username, "exp": exp, "jti": self.tokens_issued}),
                          "sandbox"))
        self._tokens[token] = float(exp)
        return token

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return False
        expiry = self._tokens.get(header[7:].strip())
        return expiry is not None and time.time() < expiry

    def _log(self, request: Request, status: int, items: int, body: Any) -> None:
        self.requests.append(ApiCall(request.method, request.url.path, status,
                                     request.headers.get("idempotency-key", ""), items, body))

    async def _json(self, request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def _fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _make_app(self) -> FastAPI:
        app = FastAPI(title="ZigZag sandbox")

        @app.post(self.token_path)
        async def token(request: Request) -> Response:
            body = await self._json(request)
            if (not isinstance(body, dict) or body.get("username") != self.username
                    or body.get("password") != self.password):
                self._log(request, 401, 0, None)
                return JSONResponse({"errorCode": "InvalidCredentials",
                                     "message": "Invalid username or password"},
                                    status_code=401)
            with self._lock:
                issued = self._issue()
            self._log(request, 200, 0, None)
            return JSONResponse({"token": issued, "expiresIn": self.token_lifetime})

        @app.put(self.stocks_path)
        async def exchange_stocks(request: Request) -> Response:
            return await self._put(request, "exchangeStocks", self._apply_stocks)

        @app.put(self.non_returnable_path)
        async def non_returnable(request: Request) -> Response:
            return await self._put(request, "nonReturnableProducts", self._apply_non_returnable)

        return app

    async def _put(self, request: Request, key: str, apply: Any) -> Response:
        if not self._authorised(request):
            self._log(request, 401, 0, None)
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        fault = self._fault()
        if fault is not None:
            self._log(request, fault.status_code, 0, None)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return JSONResponse({"message": "injected fault"}, status_code=fault.status_code,
                                headers=headers)
        body = await self._json(request)
        if not isinstance(body, dict):
            self._log(request, 400, 0, body)
            return JSONResponse({"errorCode": "InvalidRequest",
                                 "message": "The body must be a JSON object"}, status_code=400)
        if body.get("retailerCode") != self.retailer_code:
            self._log(request, 400, 0, body)
            return JSONResponse({"errorCode": "InvalidRetailer",
                                 "message": f"Unknown retailerCode {body.get('retailerCode')!r}"},
                                status_code=400)
        items = body.get(key)
        if not isinstance(items, list) or not items:
            self._log(request, 400, 0, body)
            return JSONResponse({"errorCode": "InvalidRequest",
                                 "message": f"{key} must be a non-empty list"}, status_code=400)
        with self._lock:
            status, answer = apply(items)
        self._log(request, status, len(items), body)
        return JSONResponse(answer, status_code=status)

    def _stock_errors(self, index: int, item: Any) -> list[str]:
        if not isinstance(item, dict):
            return [f"exchangeStocks[{index}] must be an object"]
        errors = []
        sku, dc, qty = item.get("sku"), item.get("warehouseDcCode"), item.get(
            "availableQuantity")
        if sku not in self.known_skus:
            errors.append(f"exchangeStocks[{index}].sku {sku!r} does not exist")
        elif sku in self.refused_skus:
            errors.append(f"exchangeStocks[{index}].sku {sku!r} {self.refused_skus[sku]}")
        if dc not in self.dc_codes:
            errors.append(f"exchangeStocks[{index}].warehouseDcCode {dc!r} does not exist")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 <= qty <= MAX_QUANTITY:
            errors.append(f"exchangeStocks[{index}].availableQuantity must be an integer "
                          f"0..{MAX_QUANTITY}")
        return errors

    def _apply_stocks(self, items: list[Any]) -> tuple[int, Any]:
        errors = [e for i, item in enumerate(items) for e in self._stock_errors(i, item)]
        if errors:
            return 400, {"errorCode": "ValidationFailed", "errors": errors}
        for item in items:
            self.stock[(item["sku"], item["warehouseDcCode"])] = item["availableQuantity"]
        return 200, {"updated": len(items)}

    def _apply_non_returnable(self, items: list[Any]) -> tuple[int, Any]:
        if len(items) > 40:
            return 400, {"errorCode": "TooManyProducts",
                         "message": "At most 40 products per request"}
        processed, skipped = 0, []
        for item in items:
            sku = item.get("sku") if isinstance(item, dict) else None
            ok = (isinstance(item, dict) and sku in self.known_skus
                  and isinstance(item.get("countryIso", ""), str)
                  and len(item.get("countryIso", "")) in (0, 2)
                  and item.get("messageKey") in MESSAGE_KEYS
                  and isinstance(item.get("isReturnable"), bool))
            if not ok or not isinstance(item, dict):
                skipped.append({"sku": sku, "reason": "failed validation"})
                continue
            self.non_returnable[(item["sku"], item.get("countryIso", ""))] = {
                "messageKey": item["messageKey"], "isReturnable": item["isReturnable"]}
            processed += 1
        return 200, {"processed": processed, "skipped": skipped}
