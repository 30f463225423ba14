"""Client library, `spotcheck` CLI and the embedded dev stack."""
