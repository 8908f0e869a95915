"""API keys for tests: one of each role, made in the test database as an admin would make them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from security.api_keys import Role, create_key

CLIENT_ID = "shop-a"
OTHER_CLIENT_ID = "shop-b"


@dataclass(frozen=True)
class Keys:
    client: str  # a shop acting for CLIENT_ID
    other_client: str  # another shop, acting for OTHER_CLIENT_ID
    operator: str
    purchasing: str
    admin: str

    def of(self, role: Role) -> str:
        return {
            Role.CLIENT: self.client,
            Role.OPERATOR: self.operator,
            Role.PURCHASING: self.purchasing,
            Role.ADMIN: self.admin,
        }[role]


async def make_keys(sessionmaker: async_sessionmaker[AsyncSession], hash_secret: str) -> Keys:
    async with sessionmaker.begin() as session:

        async def key(name: str, role: Role, client_id: str | None = None) -> str:
            made, _ = await create_key(session, name=name, role=role, client_id=client_id, hash_secret=hash_secret)
            return made

        return Keys(
            client=await key("shop A", Role.CLIENT, CLIENT_ID),
            other_client=await key("shop B", Role.CLIENT, OTHER_CLIENT_ID),
            operator=await key("operations desk", Role.OPERATOR),
            purchasing=await key("purchasing desk", Role.PURCHASING),
            admin=await key("admin", Role.ADMIN),
        )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
