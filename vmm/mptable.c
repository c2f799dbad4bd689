/*
 * mptable.c - MP spec 1.4 floating pointer and configuration table.
 * Layouts from the spec's chapter 4 (also in Linux's asm/mpspec_def.h).
 */
#include "vmm/mptable.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "vmm/layout.h"

#define MP_SPEC_REV 4             /* 1.4 */
#define MP_LAPIC_VERSION 0x14     /* what KVM's local APIC reports */
#define MP_IOAPIC_VERSION 0x11    /* what KVM's IOAPIC reports */
#define MP_ISA_BUS_ID 0
#define MP_ALL_LAPICS 0xff

enum mp_entry_type {
	MP_PROCESSOR = 0,
	MP_BUS = 1,
	MP_IOAPIC = 2,
	MP_IO_INTERRUPT = 3,
	MP_LOCAL_INTERRUPT = 4,
};

enum mp_interrupt_type {
	MP_INT = 0,               /* vectored, from the IOAPIC entry */
	MP_NMI = 1,
	MP_EXTINT = 3,            /* from an 8259A */
};

#define MP_CPU_ENABLED 0x1
#define MP_CPU_BSP 0x2
#define MP_IOAPIC_ENABLED 0x1
#define MP_IRQ_CONFORMING 0x0     /* polarity and trigger of the bus: ISA edge high */
/* CPUID-style signature and features; Linux only reports them. */
#define MP_CPU_SIGNATURE (6 << 8) /* family 6 */
#define MP_CPU_FEATURES ((1u << 0) | (1u << 9)) /* FPU, APIC */

struct mp_floating_pointer {
	char signature[4];        /* "_MP_" */
	uint32_t config_gpa;
	uint8_t length;           /* in 16-byte units */
	uint8_t spec_rev;
	uint8_t checksum;
	uint8_t features[5];      /* 0: a configuration table is present */
} __attribute__((packed));

struct mp_config_header {
	char signature[4];        /* "PCMP" */
	uint16_t length;          /* header and entries */
	uint8_t spec_rev;
	uint8_t checksum;
	char oem_id[8];
	char product_id[12];
	uint32_t oem_table_gpa;
	uint16_t oem_table_size;
	uint16_t entry_count;
	uint32_t lapic_gpa;
	uint16_t ext_table_length;
	uint8_t ext_table_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mp_processor {
	uint8_t type;
	uint8_t lapic_id;
	uint8_t lapic_version;
	uint8_t flags;
	uint32_t signature;
	uint32_t features;
	uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
	uint8_t type;
	uint8_t bus_id;
	char bus_type[6];         /* space-padded */
} __attribute__((packed));

struct mp_ioapic {
	uint8_t type;
	uint8_t ioapic_id;
	uint8_t ioapic_version;
	uint8_t flags;
	uint32_t ioapic_gpa;
} __attribute__((packed));

/* Both interrupt entry types share this layout. */
struct mp_interrupt {
	uint8_t type;
	uint8_t interrupt_type;
	uint16_t flags;
	uint8_t source_bus;
	uint8_t source_irq;
	uint8_t dest_apic;        /* IOAPIC id, or local APIC id / MP_ALL_LAPICS */
	uint8_t dest_pin;         /* IOAPIC pin or LINTn */
} __attribute__((packed));

static_assert(sizeof(struct mp_floating_pointer) == 16, "MP floating pointer");
static_assert(sizeof(struct mp_config_header) == 44, "MP config header");
static_assert(sizeof(struct mp_processor) == 20, "MP processor entry");
static_assert(sizeof(struct mp_bus) == 8 && sizeof(struct mp_ioapic) == 8 &&
	      sizeof(struct mp_interrupt) == 8, "MP 8-byte entries");

#define MP_LOCAL_INTERRUPTS 2
#define MP_CONFIG_MAX_SIZE                                                \
	(sizeof(struct mp_config_header) +                                \
	 MPTABLE_MAX_CPUS * sizeof(struct mp_processor) +                 \
	 sizeof(struct mp_bus) + sizeof(struct mp_ioapic) +               \
	 (MPTABLE_ISA_IRQS + MP_LOCAL_INTERRUPTS) * sizeof(struct mp_interrupt))
/* The memory map reserves EBDA_GPA up to HIMEM_GPA for them. */
static_assert(EBDA_GPA + sizeof(struct mp_floating_pointer) +
	      MP_CONFIG_MAX_SIZE <= HIMEM_GPA, "MP tables fit the reserved area");

struct mp_builder {
	uint8_t buf[MP_CONFIG_MAX_SIZE]; /* configuration header, entries */
	size_t len;
	unsigned int entries;
};

static void mp_append(struct mp_builder *b, const void *entry, size_t size)
{
	memcpy(b->buf + b->len, entry, size);
	b->len += size;
	b->entries++;
}

/* The value that makes the bytes sum to zero. */
static uint8_t mp_checksum(const uint8_t *bytes, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += bytes[i];
	return (uint8_t)-sum;
}

static void mp_append_interrupt(struct mp_builder *b, uint8_t type,
				uint8_t interrupt_type, uint8_t source_irq,
				uint8_t dest_apic, uint8_t dest_pin)
{
	struct mp_interrupt entry = {
		.type = type,
		.interrupt_type = interrupt_type,
		.flags = MP_IRQ_CONFORMING,
		.source_bus = MP_ISA_BUS_ID,
		.source_irq = source_irq,
		.dest_apic = dest_apic,
		.dest_pin = dest_pin,
	};

	mp_append(b, &entry, sizeof(entry));
}

int mptable_write(const struct guest_mem *mem, unsigned int ncpus)
{
	const uint64_t config_gpa = EBDA_GPA + sizeof(struct mp_floating_pointer);
	const uint8_t ioapic_id = ncpus;
	struct mp_floating_pointer fp = {
		.signature = "_MP_",
		.config_gpa = config_gpa,
		.length = sizeof(fp) / 16,
		.spec_rev = MP_SPEC_REV,
	};
	struct mp_config_header header = {
		.signature = "PCMP",
		.spec_rev = MP_SPEC_REV,
		.oem_id = "EROVM   ",
		.product_id = "MICROVM     ",
		.lapic_gpa = LAPIC_GPA,
	};
	struct mp_bus bus = {
		.type = MP_BUS, .bus_id = MP_ISA_BUS_ID, .bus_type = "ISA   ",
	};
	struct mp_ioapic ioapic = {
		.type = MP_IOAPIC,
		.ioapic_id = ioapic_id,
		.ioapic_version = MP_IOAPIC_VERSION,
		.flags = MP_IOAPIC_ENABLED,
		.ioapic_gpa = IOAPIC_GPA,
	};
	struct mp_builder b = { .len = sizeof(header) };

	if (ncpus == 0 || ncpus > MPTABLE_MAX_CPUS)
		return -EINVAL;

	/* Entries first, into b.buf after room for the header. */
	for (unsigned int cpu = 0; cpu < ncpus; cpu++) {
		struct mp_processor processor = {
			.type = MP_PROCESSOR,
			.lapic_id = cpu,
			.lapic_version = MP_LAPIC_VERSION,
			.flags = MP_CPU_ENABLED | (cpu == 0 ? MP_CPU_BSP : 0),
			.signature = MP_CPU_SIGNATURE,
			.features = MP_CPU_FEATURES,
		};

		mp_append(&b, &processor, sizeof(processor));
	}
	mp_append(&b, &bus, sizeof(bus));
	mp_append(&b, &ioapic, sizeof(ioapic));
	for (unsigned int irq = 0; irq < MPTABLE_ISA_IRQS; irq++)
		mp_append_interrupt(&b, MP_IO_INTERRUPT, MP_INT, irq, ioapic_id,
				    irq);
	mp_append_interrupt(&b, MP_LOCAL_INTERRUPT, MP_EXTINT, 0, MP_ALL_LAPICS, 0);
	mp_append_interrupt(&b, MP_LOCAL_INTERRUPT, MP_NMI, 0, MP_ALL_LAPICS, 1);

	header.length = b.len;
	header.entry_count = b.entries;
	memcpy(b.buf, &header, sizeof(header));
	b.buf[offsetof(struct mp_config_header, checksum)] =
		mp_checksum(b.buf, b.len);
	fp.checksum = mp_checksum((const uint8_t *)&fp, sizeof(fp));

	if (guest_mem_write(mem, EBDA_GPA, &fp, sizeof(fp)) ||
	    guest_mem_write(mem, config_gpa, b.buf, b.len))
		return -EFAULT;
	return 0;
}
