"""Tokens that stand for a person with less than the person may do: scoped tokens limited to some scopes and
twins (``scoped_tokens``), and tokens exchanged for one lake or compute site (``exchange``, RFC 8693). They
check what they name (twins, sites) in the packages that keep them, so they sit above those, over ``auth``.
"""
