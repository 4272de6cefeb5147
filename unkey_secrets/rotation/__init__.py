"""The one rotation protocol, shared by the library, the CLI and the Lambda.

The Unkey side (:mod:`.core`), the durable record in the store (:mod:`.record`) and the
library's run of it (:mod:`.protocol`); the rotation Lambda runs the same Unkey side with
Secrets Manager's version stages as its record.
"""
