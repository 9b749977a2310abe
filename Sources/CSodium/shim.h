#ifndef PATKIT_CSODIUM_SHIM_H
#define PATKIT_CSODIUM_SHIM_H
#include <sodium.h>
#endif
