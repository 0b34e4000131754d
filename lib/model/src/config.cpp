// Provisional: config parsing lands with the foundation issue.
#include "ling/model/config.h"
