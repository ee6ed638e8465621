# SPDX-License-Identifier: LGPL-2.1-or-later
# Helper programs for the VM suite, built on the host, run in the guest.

# ioctl_abuse.c: malformed, unprivileged and hostile ioctls and rings (40-ioctl-abuse.sh).
add_executable(azbuse-ioctl-abuse vm/tools/ioctl_abuse.c)
target_include_directories(azbuse-ioctl-abuse PRIVATE ${PROJECT_SOURCE_DIR}/include)

# fuzz_ioctl.c: seeded random ioctls, mmaps and ring garbage on both devices (60-ioctl-fuzz.sh).
add_executable(azbuse-fuzz-ioctl vm/tools/fuzz_ioctl.c)
target_include_directories(azbuse-fuzz-ioctl PRIVATE ${PROJECT_SOURCE_DIR}/include)

# ring_garbage.c: a worker writing garbage into its rings under verified I/O (61-ring-garbage.sh).
add_executable(azbuse-ring-garbage vm/tools/ring_garbage.c)
target_include_directories(azbuse-ring-garbage PRIVATE ${PROJECT_SOURCE_DIR}/include)

# repost_write.c: a re-posted WRITE carries the writer's data, not the dead worker's scribbles (62-repost-write-data.sh).
add_executable(azbuse-repost-write vm/tools/repost_write.c)
target_include_directories(azbuse-repost-write PRIVATE ${PROJECT_SOURCE_DIR}/include)

# start_retry.c: START again after add_disk failed (65-start-retry.sh).
add_executable(azbuse-start-retry vm/tools/start_retry.c)
target_include_directories(azbuse-start-retry PRIVATE ${PROJECT_SOURCE_DIR}/include)

# redirect.c: route by queue and REDIRECT between the rings of a sharded device (67-redirect.sh).
add_executable(azbuse-redirect vm/tools/redirect.c)
target_include_directories(azbuse-redirect PRIVATE ${PROJECT_SOURCE_DIR}/include)

# cache_attach.c: the module's reads from a RAM cache: torn copies, hostile regions (77-cache-module-hits.sh).
add_executable(azbuse-cache-attach vm/tools/cache_attach.c)
target_include_directories(azbuse-cache-attach PRIVATE ${PROJECT_SOURCE_DIR}/include)

# stuck_write.c: removal fails a write its worker never completes while other I/O flows (52-remove-stuck-write.sh).
add_executable(azbuse-stuck-write vm/tools/stuck_write.c)
target_include_directories(azbuse-stuck-write PRIVATE ${PROJECT_SOURCE_DIR}/include)
