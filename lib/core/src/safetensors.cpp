// Provisional: safetensors reader/writer land with the foundation issue.
#include "ling/core/safetensors.h"
