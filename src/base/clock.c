/* placeholder: being written */
#include "base/clock.h"
