"""The one access policy (who receives what live, who reads what afterwards),
the per-reader views of a recording, and the audit log.
"""
