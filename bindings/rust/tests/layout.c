// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * layout.c - prints, as Rust, what a C compiler makes of the engine API's
 * structs: each one's size and alignment, every field's offset and size
 * (build.rs runs it; tests/layout.rs compares src/sys.rs with it).
 */
#include <stddef.h>
#include <stdio.h>

#include <azbuse/engine.h>

#define SIZE(s)                                                                                    \
	printf("    (\"" #s ".size\", %zu),\n    (\"" #s ".align\", %zu),\n", sizeof(struct s),    \
	       _Alignof(struct s))
#define FIELD(s, f)                                                                                \
	printf("    (\"" #s "." #f "\", %zu),\n    (\"" #s "." #f ".size\", %zu),\n",              \
	       offsetof(struct s, f), sizeof(((struct s *)0)->f))

int main(void)
{
	printf("pub const C_LAYOUT: &[(&str, usize)] = &[\n");
	SIZE(azbuse_io);
	FIELD(azbuse_io, op);
	FIELD(azbuse_io, ioprio);
	FIELD(azbuse_io, tag);
	FIELD(azbuse_io, flags);
	FIELD(azbuse_io, offset);
	FIELD(azbuse_io, len);
	FIELD(azbuse_io, buf);
	FIELD(azbuse_io, engine_data);
	SIZE(azbuse_option);
	FIELD(azbuse_option, key);
	FIELD(azbuse_option, value);
	SIZE(azbuse_engine_config);
	FIELD(azbuse_engine_config, size_bytes);
	FIELD(azbuse_engine_config, logical_block_size);
	FIELD(azbuse_engine_config, nr_queues);
	FIELD(azbuse_engine_config, caps);
	FIELD(azbuse_engine_config, options);
	FIELD(azbuse_engine_config, nr_options);
	FIELD(azbuse_engine_config, error);
	FIELD(azbuse_engine_config, error_size);
	FIELD(azbuse_engine_config, recovering);
	FIELD(azbuse_engine_config, recover_options);
	FIELD(azbuse_engine_config, recover_options_size);
	FIELD(azbuse_engine_config, shard_chunk_bytes);
	FIELD(azbuse_engine_config, route_queue);
	FIELD(azbuse_engine_config, route_chosen);
	FIELD(azbuse_engine_config, direct_map_chunk_bytes);
	FIELD(azbuse_engine_config, direct_map_user_bytes);
	FIELD(azbuse_engine_config, group);
	SIZE(azbuse_queue_params);
	FIELD(azbuse_queue_params, queue);
	FIELD(azbuse_queue_params, nr_queues);
	FIELD(azbuse_queue_params, nr_slots);
	FIELD(azbuse_queue_params, size_bytes);
	FIELD(azbuse_queue_params, numa_node);
	FIELD(azbuse_queue_params, direct_map);
	FIELD(azbuse_queue_params, direct_map_bytes);
	FIELD(azbuse_queue_params, dev_id);
	FIELD(azbuse_queue_params, data_area);
	FIELD(azbuse_queue_params, data_area_bytes);
	SIZE(azbuse_engine_ops);
	FIELD(azbuse_engine_ops, struct_size);
	FIELD(azbuse_engine_ops, api_version);
	FIELD(azbuse_engine_ops, name);
	FIELD(azbuse_engine_ops, description);
	FIELD(azbuse_engine_ops, option_keys);
	FIELD(azbuse_engine_ops, setup);
	FIELD(azbuse_engine_ops, teardown);
	FIELD(azbuse_engine_ops, open_queue);
	FIELD(azbuse_engine_ops, close_queue);
	FIELD(azbuse_engine_ops, read);
	FIELD(azbuse_engine_ops, write);
	FIELD(azbuse_engine_ops, flush);
	FIELD(azbuse_engine_ops, discard);
	FIELD(azbuse_engine_ops, write_zeroes);
	FIELD(azbuse_engine_ops, secure_erase);
	FIELD(azbuse_engine_ops, batch_end);
	FIELD(azbuse_engine_ops, control);
	FIELD(azbuse_engine_ops, queue_control);
	FIELD(azbuse_engine_ops, idle);
	printf("    (\"AZBUSE_ENGINE_API_VERSION\", %d),\n", AZBUSE_ENGINE_API_VERSION);
	printf("    (\"AZBUSE_CAP_FUA\", %u),\n", AZBUSE_CAP_FUA);
	printf("    (\"AZBUSE_CAP_USER_COPY\", %u),\n", AZBUSE_CAP_USER_COPY);
	printf("    (\"AZBUSE_CAP_READ_ONLY\", %u),\n", AZBUSE_CAP_READ_ONLY);
	printf("    (\"AZBUSE_CAP_ROTATIONAL\", %u),\n", AZBUSE_CAP_ROTATIONAL);
	printf("    (\"AZBUSE_OP_SECURE_ERASE\", %d),\n", AZBUSE_OP_SECURE_ERASE);
	printf("    (\"AZBUSE_RQ_ATOMIC\", %llu),\n", (unsigned long long)AZBUSE_RQ_ATOMIC);
	printf("    (\"AZBUSE_RQ_REQUEUED\", %llu),\n", (unsigned long long)AZBUSE_RQ_REQUEUED);
	printf("    (\"AZBUSE_LOG_INFO\", %d),\n", AZBUSE_LOG_INFO);
	printf("];\n");
	return 0;
}
