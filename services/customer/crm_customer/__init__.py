"""customer: the operator's single source of truth about a customer (客户信息集中管理)."""
