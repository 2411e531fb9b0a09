/* placeholder: being written */
#include "base/err.h"
