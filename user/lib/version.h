/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef CAELUM_VERSION_H
#define CAELUM_VERSION_H

#ifndef CAELUM_VERSION
#define CAELUM_VERSION "0.1.0"
#endif

#endif /* CAELUM_VERSION_H */
