# recqueue as a user C module (make-based ports: unix, the core host port).
RECQUEUE_MOD_DIR := $(USERMOD_DIR)

# recqueue.c includes rq_core.c (one translation unit, so hot paths inline).
SRC_USERMOD_C += $(RECQUEUE_MOD_DIR)/recqueue.c
CFLAGS_USERMOD += -I$(RECQUEUE_MOD_DIR)
