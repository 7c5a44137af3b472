"""Keyed state: card histories (arena + RocksDB), the merchant table, fraud reports."""
