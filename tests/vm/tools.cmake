# Helper programs for the VM suite, built on the host, run in the guest.

# ioctl_abuse.c: malformed, unprivileged and hostile ioctls and rings (40-ioctl-abuse.sh).
add_executable(azbuse-ioctl-abuse vm/tools/ioctl_abuse.c)
target_include_directories(azbuse-ioctl-abuse PRIVATE ${PROJECT_SOURCE_DIR}/include)
