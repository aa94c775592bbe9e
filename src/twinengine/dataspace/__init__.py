"""The engine as a data space participant: the Eclipse Dataspace Protocol 2025-1, provider and consumer.

Offers of lake data under ODRL 2.2 policies (``offers``, ``odrl``), the catalog each participant may see
(``catalog``), the negotiation and transfer state machines kept in the store (``negotiation``, ``transfer``;
negotiations a provider starts, ``proposals``), the courier that sends what each process owes (``courier``), the
HttpData-PULL data plane (``dataplane``) and the participant identity, a ``did:web`` with self-signed tokens
(``identity``). docs/dataspaces.md tells the story.
"""
