# Helper programs for the VM suite, built on the host, run in the guest.
