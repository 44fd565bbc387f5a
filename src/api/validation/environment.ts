import Joi from 'joi';

/** Body of `PUT /environment/{key}`. */
export const environmentValueSchema = Joi.object({
  value: Joi.string().allow('').max(64 * 1024).required().description('The value containers get (applies to deployments started afterwards).'),
});
