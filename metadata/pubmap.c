// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * pubmap.c - the published map (see pubmap.h), laid out as the module's
 * direct map (struct azbuse_map_hdr, uapi.h): the header with the write
 * epoch; in its user bytes the grace clock and one line per reader; then
 * one 64-bit word per chunk. Either a shared anonymous mapping of its own
 * (azb_pubmap_create) or the module's map of a device (azb_pubmap_attach).
 * All zero is a valid start: epoch 0, every entry UNKNOWN, every reader idle.
 *
 * Word layout: kind in bits 62-63, the epoch stamp (the epoch's low
 * AZB_PUBMAP_EPOCH_BITS bits) in bits 40-61, the physical chunk in bits
 * 0-39. Every access to a word, a reader's line and the clock is
 * sequentially consistent: the grace argument (an owner that finds a reader
 * idle after unpublishing must know the reader's next lookup sees the
 * change) needs the single total order, and on x86 it costs a locked store
 * only on the owner's side and for a reader's quiescent mark.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <azbuse/uapi.h>

#include "pubmap.h"

#define PUB_KIND_SHIFT 62
#define PUB_EPOCH_SHIFT AZB_PUBMAP_PHYS_BITS
#define PUB_PHYS_MASK ((1ULL << AZB_PUBMAP_PHYS_BITS) - 1)
#define PUB_EPOCH_MASK ((1ULL << AZB_PUBMAP_EPOCH_BITS) - 1)
#define PUB_IDLE 0 /* a zeroed map has every reader idle */
#define PUB_LINE 64

/* The word layout is the module's (AZBUSE_F_DIRECT_MAP), which serves from the same map. */
_Static_assert(PUB_KIND_SHIFT == AZBUSE_MAP_KIND_SHIFT, "map entry layout");
_Static_assert(PUB_EPOCH_SHIFT == AZBUSE_MAP_EPOCH_SHIFT, "map entry layout");
_Static_assert(AZB_PUBMAP_EPOCH_BITS == AZBUSE_MAP_EPOCH_BITS, "map entry layout");
_Static_assert(AZB_PUB_OWNED == AZBUSE_MAP_OWNED && AZB_PUB_SHARED == AZBUSE_MAP_SHARED &&
		       AZB_PUB_ZERO == AZBUSE_MAP_ZERO,
	       "map entry kinds");

struct pub_reader {
	/* PUB_IDLE, or 1 + the clock at the reader's last quiescent mark */
	_Atomic uint64_t seen;
	char pad[PUB_LINE - sizeof(uint64_t)];
};

/* The owners' and readers' part, in the map's user bytes. */
struct pub_sync {
	_Atomic uint64_t clock; /* grace tickets: bumped by retire and new_epoch */
	char pad[PUB_LINE - sizeof(uint64_t)];
	struct pub_reader readers[];
};

struct azb_pubmap {
	struct azbuse_map_hdr *hdr;
	_Atomic uint64_t *epoch; /* the current write epoch (hdr->epoch) */
	struct pub_sync *sync;
	_Atomic uint64_t *words;
	uint64_t nr_chunks;
	uint32_t nr_readers;
	size_t bytes; /* of a map made by azb_pubmap_create (0: attached) */
};

static uint64_t pub_word(enum azb_pub_kind kind, uint64_t epoch, uint64_t phys)
{
	return ((uint64_t)kind << PUB_KIND_SHIFT) | ((epoch & PUB_EPOCH_MASK) << PUB_EPOCH_SHIFT) |
	       (phys & PUB_PHYS_MASK);
}

size_t azb_pubmap_user_bytes(uint32_t nr_readers)
{
	return sizeof(struct pub_sync) + (size_t)nr_readers * sizeof(struct pub_reader);
}

static size_t pub_round_page(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) / page * page;
}

/* Point pm's parts into a map laid out as its header says. */
static void pub_wire(struct azb_pubmap *pm, void *mem, uint32_t nr_readers)
{
	pm->hdr = mem;
	pm->epoch = (_Atomic uint64_t *)&pm->hdr->epoch;
	pm->sync = (struct pub_sync *)((char *)mem + pm->hdr->user_offset);
	pm->words = (_Atomic uint64_t *)((char *)mem + pm->hdr->entries_offset);
	pm->nr_chunks = pm->hdr->nr_chunks;
	pm->nr_readers = nr_readers;
}

int azb_pubmap_create(uint64_t nr_chunks, uint32_t nr_readers, struct azb_pubmap **out)
{
	size_t user = azb_pubmap_user_bytes(nr_readers), off, bytes;
	struct azb_pubmap *pm;
	void *mem;

	*out = NULL;
	if (!nr_chunks || !nr_readers || nr_readers > AZB_PUBMAP_MAX_READERS)
		return -EINVAL;
	off = pub_round_page(sizeof(struct azbuse_map_hdr) + user);
	if (nr_chunks > (SIZE_MAX / 2 - off) / sizeof(uint64_t))
		return -EINVAL;
	bytes = pub_round_page(off + nr_chunks * sizeof(uint64_t));
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	/* pages are zero: every entry starts UNKNOWN, and costs RAM only once published */
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	if (mem == MAP_FAILED) {
		free(pm);
		return -ENOMEM;
	}
	((struct azbuse_map_hdr *)mem)->nr_chunks = nr_chunks;
	((struct azbuse_map_hdr *)mem)->entries_offset = (uint32_t)off;
	((struct azbuse_map_hdr *)mem)->region_bytes = bytes;
	((struct azbuse_map_hdr *)mem)->user_offset = sizeof(struct azbuse_map_hdr);
	((struct azbuse_map_hdr *)mem)->user_bytes = (uint32_t)user;
	pub_wire(pm, mem, nr_readers);
	pm->bytes = bytes;
	*out = pm;
	return 0;
}

int azb_pubmap_attach(void *map, size_t bytes, uint32_t nr_readers, struct azb_pubmap **out)
{
	const struct azbuse_map_hdr *hdr = map;
	struct azb_pubmap *pm;

	*out = NULL;
	if (!map || bytes < sizeof(*hdr) || !nr_readers || nr_readers > AZB_PUBMAP_MAX_READERS)
		return -EINVAL;
	if (hdr->region_bytes > bytes || hdr->user_bytes < azb_pubmap_user_bytes(nr_readers) ||
	    hdr->user_offset < sizeof(*hdr) || hdr->user_offset % PUB_LINE ||
	    (uint64_t)hdr->user_offset + hdr->user_bytes > hdr->entries_offset ||
	    hdr->entries_offset % sizeof(uint64_t) || hdr->entries_offset > hdr->region_bytes ||
	    hdr->nr_chunks > (hdr->region_bytes - hdr->entries_offset) / sizeof(uint64_t))
		return -EPROTO;
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	pub_wire(pm, map, nr_readers);
	*out = pm;
	return 0;
}

void azb_pubmap_destroy(struct azb_pubmap *pm)
{
	if (!pm)
		return;
	if (pm->bytes)
		munmap(pm->hdr, pm->bytes);
	free(pm);
}

uint64_t azb_pubmap_nr_chunks(const struct azb_pubmap *pm)
{
	return pm->nr_chunks;
}

int azb_pubmap_publish(struct azb_pubmap *pm, uint64_t chunk, enum azb_pub_kind kind, uint64_t phys)
{
	uint64_t epoch;

	if (chunk >= pm->nr_chunks || kind < AZB_PUB_UNKNOWN || kind > AZB_PUB_OWNED)
		return -EINVAL;
	if (kind == AZB_PUB_UNKNOWN || kind == AZB_PUB_ZERO)
		phys = 0;
	else if (phys > PUB_PHYS_MASK)
		return -ERANGE;
	epoch = atomic_load(pm->epoch);
	atomic_store(&pm->words[chunk], pub_word(kind, epoch, phys));
	/*
	 * A new epoch started meanwhile: the owner decided "owned" before a
	 * snapshot it has not seen, so the chunk may be shared now. Read-only
	 * is always safe (and the stamp can never come round to current).
	 */
	if (kind == AZB_PUB_OWNED && atomic_load(pm->epoch) != epoch)
		atomic_store(&pm->words[chunk], pub_word(AZB_PUB_SHARED, 0, phys));
	return 0;
}

void azb_pubmap_forget(struct azb_pubmap *pm, uint64_t chunk)
{
	if (chunk < pm->nr_chunks)
		atomic_store(&pm->words[chunk], 0);
}

/* Stamps are about to wrap: no OWNED entry may keep one. */
static void pub_demote_owned(struct azb_pubmap *pm)
{
	uint64_t c;

	for (c = 0; c < pm->nr_chunks; c++) {
		uint64_t w = atomic_load(&pm->words[c]);

		if ((w >> PUB_KIND_SHIFT) == AZB_PUB_OWNED)
			atomic_compare_exchange_strong(
				&pm->words[c], &w, pub_word(AZB_PUB_SHARED, 0, w & PUB_PHYS_MASK));
	}
}

uint64_t azb_pubmap_new_epoch(struct azb_pubmap *pm)
{
	uint64_t next = atomic_load(pm->epoch) + 1;

	if (next & PUB_EPOCH_MASK) {
		atomic_store(pm->epoch, next);
		return azb_pubmap_retire(pm);
	}
	/*
	 * The stamps wrap (and 0 is skipped): entries stamped with the epoch
	 * coming back must go before it does, and any that an owner stamps
	 * with the old one while this runs must go after it (an owner that
	 * stores after the new epoch is visible demotes its own entry).
	 */
	pub_demote_owned(pm);
	atomic_store(pm->epoch, next + 1);
	pub_demote_owned(pm);
	return azb_pubmap_retire(pm);
}

uint64_t azb_pubmap_retire(struct azb_pubmap *pm)
{
	return atomic_fetch_add(&pm->sync->clock, 1) + 1;
}

bool azb_pubmap_passed(const struct azb_pubmap *pm, uint64_t ticket)
{
	uint32_t r;

	for (r = 0; r < pm->nr_readers; r++) {
		uint64_t seen = atomic_load(&pm->sync->readers[r].seen);

		if (seen != PUB_IDLE && seen <= ticket)
			return false;
	}
	return true;
}

struct azb_pub_entry azb_pubmap_lookup(const struct azb_pubmap *pm, uint64_t chunk)
{
	struct azb_pub_entry e = { .kind = AZB_PUB_UNKNOWN };
	uint64_t w;

	if (chunk >= pm->nr_chunks)
		return e;
	w = atomic_load(&pm->words[chunk]);
	e.kind = (enum azb_pub_kind)(w >> PUB_KIND_SHIFT);
	if (e.kind == AZB_PUB_SHARED || e.kind == AZB_PUB_OWNED)
		e.phys = w & PUB_PHYS_MASK;
	e.writable = e.kind == AZB_PUB_OWNED && ((w >> PUB_EPOCH_SHIFT) & PUB_EPOCH_MASK) ==
							(atomic_load(pm->epoch) & PUB_EPOCH_MASK);
	return e;
}

void azb_pubmap_quiescent(struct azb_pubmap *pm, uint32_t reader)
{
	if (reader < pm->nr_readers)
		atomic_store(&pm->sync->readers[reader].seen, atomic_load(&pm->sync->clock) + 1);
}

void azb_pubmap_idle(struct azb_pubmap *pm, uint32_t reader)
{
	if (reader < pm->nr_readers)
		atomic_store(&pm->sync->readers[reader].seen, PUB_IDLE);
}
