/*
 * pubmap.c - the published map (see pubmap.h): a header with the write
 * epoch, the grace clock and one line per reader, then one 64-bit word per
 * chunk, all in one shared anonymous mapping.
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

#include "pubmap.h"

#define PUB_KIND_SHIFT 62
#define PUB_EPOCH_SHIFT AZB_PUBMAP_PHYS_BITS
#define PUB_PHYS_MASK ((1ULL << AZB_PUBMAP_PHYS_BITS) - 1)
#define PUB_EPOCH_MASK ((1ULL << AZB_PUBMAP_EPOCH_BITS) - 1)
#define PUB_IDLE UINT64_MAX
#define PUB_LINE 64

struct pub_reader {
	_Atomic uint64_t seen; /* the clock at the reader's last quiescent mark, or PUB_IDLE */
	char pad[PUB_LINE - sizeof(uint64_t)];
};

struct pub_header {
	uint64_t nr_chunks;
	uint32_t nr_readers;
	uint32_t reserved;
	_Atomic uint64_t epoch; /* the current write epoch */
	_Atomic uint64_t clock; /* grace tickets: bumped by retire and new_epoch */
	char pad[PUB_LINE - 32];
	struct pub_reader readers[];
};

struct azb_pubmap {
	struct pub_header *hdr;
	_Atomic uint64_t *words;
	size_t bytes;
};

static size_t pub_words_offset(uint32_t nr_readers)
{
	return sizeof(struct pub_header) + (size_t)nr_readers * sizeof(struct pub_reader);
}

static uint64_t pub_word(enum azb_pub_kind kind, uint64_t epoch, uint64_t phys)
{
	return ((uint64_t)kind << PUB_KIND_SHIFT) | ((epoch & PUB_EPOCH_MASK) << PUB_EPOCH_SHIFT) |
	       (phys & PUB_PHYS_MASK);
}

int azb_pubmap_create(uint64_t nr_chunks, uint32_t nr_readers, struct azb_pubmap **out)
{
	struct azb_pubmap *pm;
	size_t off = pub_words_offset(nr_readers), bytes;
	void *mem;
	uint32_t r;

	*out = NULL;
	if (!nr_chunks || !nr_readers || nr_readers > AZB_PUBMAP_MAX_READERS ||
	    nr_chunks > (SIZE_MAX - off) / sizeof(uint64_t))
		return -EINVAL;
	bytes = off + nr_chunks * sizeof(uint64_t);
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
	pm->hdr = mem;
	pm->words = (_Atomic uint64_t *)((char *)mem + off);
	pm->bytes = bytes;
	pm->hdr->nr_chunks = nr_chunks;
	pm->hdr->nr_readers = nr_readers;
	atomic_store(&pm->hdr->epoch, 1);
	atomic_store(&pm->hdr->clock, 0);
	for (r = 0; r < nr_readers; r++)
		atomic_store(&pm->hdr->readers[r].seen, PUB_IDLE);
	*out = pm;
	return 0;
}

void azb_pubmap_destroy(struct azb_pubmap *pm)
{
	if (!pm)
		return;
	munmap(pm->hdr, pm->bytes);
	free(pm);
}

uint64_t azb_pubmap_nr_chunks(const struct azb_pubmap *pm)
{
	return pm->hdr->nr_chunks;
}

int azb_pubmap_publish(struct azb_pubmap *pm, uint64_t chunk, enum azb_pub_kind kind, uint64_t phys)
{
	uint64_t epoch;

	if (chunk >= pm->hdr->nr_chunks || kind < AZB_PUB_UNKNOWN || kind > AZB_PUB_OWNED)
		return -EINVAL;
	if (kind == AZB_PUB_UNKNOWN || kind == AZB_PUB_ZERO)
		phys = 0;
	else if (phys > PUB_PHYS_MASK)
		return -ERANGE;
	epoch = atomic_load(&pm->hdr->epoch);
	atomic_store(&pm->words[chunk], pub_word(kind, epoch, phys));
	/*
	 * A new epoch started meanwhile: the owner decided "owned" before a
	 * snapshot it has not seen, so the chunk may be shared now. Read-only
	 * is always safe (and the stamp can never come round to current).
	 */
	if (kind == AZB_PUB_OWNED && atomic_load(&pm->hdr->epoch) != epoch)
		atomic_store(&pm->words[chunk], pub_word(AZB_PUB_SHARED, 0, phys));
	return 0;
}

void azb_pubmap_forget(struct azb_pubmap *pm, uint64_t chunk)
{
	if (chunk < pm->hdr->nr_chunks)
		atomic_store(&pm->words[chunk], 0);
}

/* Stamps are about to wrap: no OWNED entry may keep one. */
static void pub_demote_owned(struct azb_pubmap *pm)
{
	uint64_t c;

	for (c = 0; c < pm->hdr->nr_chunks; c++) {
		uint64_t w = atomic_load(&pm->words[c]);

		if ((w >> PUB_KIND_SHIFT) == AZB_PUB_OWNED)
			atomic_compare_exchange_strong(
				&pm->words[c], &w, pub_word(AZB_PUB_SHARED, 0, w & PUB_PHYS_MASK));
	}
}

uint64_t azb_pubmap_new_epoch(struct azb_pubmap *pm)
{
	uint64_t next = atomic_load(&pm->hdr->epoch) + 1;

	if (next & PUB_EPOCH_MASK) {
		atomic_store(&pm->hdr->epoch, next);
		return azb_pubmap_retire(pm);
	}
	/*
	 * The stamps wrap (and 0 is skipped): entries stamped with the epoch
	 * coming back must go before it does, and any that an owner stamps
	 * with the old one while this runs must go after it (an owner that
	 * stores after the new epoch is visible demotes its own entry).
	 */
	pub_demote_owned(pm);
	atomic_store(&pm->hdr->epoch, next + 1);
	pub_demote_owned(pm);
	return azb_pubmap_retire(pm);
}

uint64_t azb_pubmap_retire(struct azb_pubmap *pm)
{
	return atomic_fetch_add(&pm->hdr->clock, 1) + 1;
}

bool azb_pubmap_passed(const struct azb_pubmap *pm, uint64_t ticket)
{
	uint32_t r;

	for (r = 0; r < pm->hdr->nr_readers; r++)
		if (atomic_load(&pm->hdr->readers[r].seen) < ticket)
			return false;
	return true;
}

struct azb_pub_entry azb_pubmap_lookup(const struct azb_pubmap *pm, uint64_t chunk)
{
	struct azb_pub_entry e = { .kind = AZB_PUB_UNKNOWN };
	uint64_t w;

	if (chunk >= pm->hdr->nr_chunks)
		return e;
	w = atomic_load(&pm->words[chunk]);
	e.kind = (enum azb_pub_kind)(w >> PUB_KIND_SHIFT);
	if (e.kind == AZB_PUB_SHARED || e.kind == AZB_PUB_OWNED)
		e.phys = w & PUB_PHYS_MASK;
	e.writable =
		e.kind == AZB_PUB_OWNED && ((w >> PUB_EPOCH_SHIFT) & PUB_EPOCH_MASK) ==
						   (atomic_load(&pm->hdr->epoch) & PUB_EPOCH_MASK);
	return e;
}

void azb_pubmap_quiescent(struct azb_pubmap *pm, uint32_t reader)
{
	if (reader < pm->hdr->nr_readers)
		atomic_store(&pm->hdr->readers[reader].seen, atomic_load(&pm->hdr->clock));
}

void azb_pubmap_idle(struct azb_pubmap *pm, uint32_t reader)
{
	if (reader < pm->hdr->nr_readers)
		atomic_store(&pm->hdr->readers[reader].seen, PUB_IDLE);
}
