/* log: one line per message to the account's logfile and/or syslog. */
#ifndef POSTBOTE_LOG_H
#define POSTBOTE_LOG_H

#include "config.h"

/* fields: "key=value" pairs already formatted; nothing secret goes in. */
void log_message(const struct account *acct, const char *line, bool failed);

/* The facility for a name like "LOG_MAIL"; -1 when unknown. */
int log_facility(const char *name);

#endif
