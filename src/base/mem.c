/* placeholder: being written */
#include "base/mem.h"
