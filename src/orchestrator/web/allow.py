"""OPTIONS answers list every method of the path in `Allow`.

Litestar 2 answers with the methods of whichever handler of the path registered first
(litestar#4169, fixed in Litestar 3): OPTIONS /leads said POST but not GET. This hook puts the
route's whole list back; it goes when Litestar 3 comes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.routes import HTTPRoute

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import Message, Scope


class AllowEveryMethod:
    def __init__(self) -> None:
        self._allow: dict[int, bytes] | None = None

    async def __call__(self, message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
            return
        allow = self._methods(scope["app"]).get(id(scope.get("route_handler")))
        if allow is not None:
            headers = [
                (name, value) for name, value in message.get("headers", []) if name.lower() != b"allow"
            ]
            message["headers"] = [*headers, (b"allow", allow)]

    def _methods(self, app: Litestar) -> dict[int, bytes]:
        """Each handler's route's methods, built once the app's routes are final."""
        if self._allow is None:
            self._allow = {
                id(handler): ", ".join(sorted(route.methods)).encode()
                for route in app.routes
                if isinstance(route, HTTPRoute)
                for handler in route.route_handlers
            }
        return self._allow
