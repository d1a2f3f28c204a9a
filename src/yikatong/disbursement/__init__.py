"""Disbursement (资金发放): budgets, payment batches and orders from the treasury straight to the card,
the bank interface, returns and re-payment, reconciliation, arrival SMS and the passbook."""
